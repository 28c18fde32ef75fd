//! Writes the CustomResourceDefinitions to `crds/` (or prints them with `--stdout`).

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--stdout") {
        for crd in dce_operator::resources::crds() {
            print!("---\n{}", serde_yaml::to_string(&crd)?);
        }
        return Ok(());
    }
    let dir = PathBuf::from(args.first().map(String::as_str).unwrap_or("crds"));
    std::fs::create_dir_all(&dir)?;
    for crd in dce_operator::resources::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_yaml::to_string(&crd)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
