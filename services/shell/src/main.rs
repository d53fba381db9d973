//! star: see [star_shell::program].

fn main() -> std::process::ExitCode {
    star_shell::program::main()
}
