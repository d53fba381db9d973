//! star-time: see [star_time::program].

fn main() -> std::process::ExitCode {
    star_time::program::main()
}
