//! star-config: see [star_config::program].

fn main() -> std::process::ExitCode {
    star_config::program::main()
}
