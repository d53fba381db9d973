//! star-target: see [star_target::program].

fn main() -> std::process::ExitCode {
    star_target::program::main()
}
