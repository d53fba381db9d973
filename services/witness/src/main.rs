//! star-witness: see [star_witness::program].

fn main() -> std::process::ExitCode {
    star_witness::program::main()
}
