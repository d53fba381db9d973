//! star-login: see [star_shell::login_program].

fn main() -> std::process::ExitCode {
    star_shell::login_program::main()
}
