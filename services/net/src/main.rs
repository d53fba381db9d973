//! star-net: see [star_net::program].

fn main() -> std::process::ExitCode {
    star_net::program::main()
}
