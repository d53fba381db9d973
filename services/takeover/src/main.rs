//! star-takeover: see [star_takeover::program].

fn main() -> std::process::ExitCode {
    star_takeover::program::main()
}
