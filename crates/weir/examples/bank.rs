//! The bank account demonstration (D2), embedded:
//! `cargo run -p weir --example bank [DATA_DIR]` (a fresh temporary
//! directory when none is given). `weir demo bank` runs the same code.

fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_owned(), std::path::PathBuf::from);
    weir::demo::bank::run_demo(&dir, &mut std::io::stdout().lock())?;
    Ok(())
}
