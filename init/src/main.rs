//! star-init: see [star_init::program].

fn main() -> std::process::ExitCode {
    star_init::program::main()
}
