//! star-heartbeat: see [star_heartbeat::program].

fn main() -> std::process::ExitCode {
    star_heartbeat::program::main()
}
