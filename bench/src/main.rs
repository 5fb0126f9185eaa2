//! mcbench: `mcbench [run flags]` runs a load; `mcbench plot a.json b.json -o out.svg`
//! draws saved runs side by side.

use clap::Parser;
use mcbench::config::{Cli, Command};
use mcbench::report::{self, Report};
use mcbench::{plot, runner};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Plot(p)) => plot_runs(&p.runs, &p.output),
        None => run(&cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcbench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn plot_runs(files: &[std::path::PathBuf], out: &std::path::Path) -> Result<(), String> {
    let mut runs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let r: Report = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        runs.push(r);
    }
    plot::write(out, &runs)
}

fn run(args: &mcbench::config::RunArgs) -> Result<(), String> {
    let settings = args.settings()?;
    let quiet = args.quiet;
    let json = args.json;
    let result = runner::run(settings.clone(), |tick| {
        if !quiet {
            let line = report::progress_line(tick);
            if json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
    })?;
    let rep = report::build(&settings, &result);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rep).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", report::text(&rep));
    }
    if let Some(p) = &args.plot {
        plot::write(p, std::slice::from_ref(&rep))?;
    }
    if rep.requests == 0 {
        return Err("no request completed".into());
    }
    Ok(())
}
