//! `weft analyze PATH…`: validate every resource and analyze them together.
//!
//! Exit status: 0 when there are no errors (warnings allowed), 1 when there
//! are errors, 2 for usage errors or unreadable input.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use serde::Serialize;
use weft_config::{Code, Diagnostic, LoadOptions, Severity};

/// `weft analyze` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 no errors (warnings allowed), 1 errors found, 2 usage error or unreadable input.\n\
Message codes are documented in docs/messages.md."
)]
pub struct Args {
    /// Files or directories of Istio YAML/JSON (directories are read recursively).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Namespace for resources that don't name one.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// A MeshConfig YAML file (as Istio's `mesh` ConfigMap key).
    #[arg(long, value_name = "FILE")]
    mesh: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// Lowest severity to print.
    #[arg(long, value_enum, default_value_t = Level::Info)]
    level: Level,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    /// One line per message, then a summary.
    Human,
    /// A JSON document with every message and a summary.
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Level {
    Error,
    Warning,
    Info,
}

impl Level {
    fn shows(self, s: Severity) -> bool {
        match self {
            Level::Error => s == Severity::Error,
            Level::Warning => s != Severity::Info,
            Level::Info => true,
        }
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    files: usize,
    resources: usize,
    errors: usize,
    warnings: usize,
    infos: usize,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    diagnostics: Vec<&'a Diagnostic>,
    summary: &'a Summary,
}

/// Runs `weft analyze`.
pub fn run(args: Args) -> ExitCode {
    let opts = LoadOptions {
        default_namespace: args.namespace.clone(),
    };
    let mut loaded = weft_config::load_paths(&args.paths, &opts);
    if let Some(mesh) = &args.mesh {
        match weft_config::load::load_mesh_file(mesh) {
            Ok((config, diags)) => {
                loaded.diagnostics.extend(diags);
                loaded.mesh = Some((
                    config,
                    weft_config::resource::Source {
                        file: mesh.clone(),
                        line: 1,
                        auto_registered_from: None,
                    },
                ));
            }
            Err(d) => loaded.diagnostics.push(*d),
        }
    }
    let mut diags = loaded.diagnostics.clone();
    diags.extend(weft_config::analyze::analyze(&loaded));
    diags.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));

    let count = |s: Severity| diags.iter().filter(|d| d.severity == s).count();
    let summary = Summary {
        files: loaded.files.len(),
        resources: loaded.resources.len() + loaded.rejected.len(),
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        infos: count(Severity::Info),
    };
    let unreadable = diags.iter().any(|d| d.code == Code::UnreadableFile);
    let shown: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| args.level.shows(d.severity))
        .collect();

    let mut out = std::io::stdout().lock();
    let written = match args.output {
        Output::Json => serde_json::to_writer_pretty(
            &mut out,
            &Report {
                diagnostics: shown,
                summary: &summary,
            },
        )
        .map_err(std::io::Error::other)
        .and_then(|()| writeln!(out)),
        Output::Human => print_human(&mut out, &shown, &summary),
    };
    if written.is_err() {
        // stdout closed (e.g. piped into `head`): nothing more to say.
        return ExitCode::from(2);
    }
    if unreadable {
        ExitCode::from(2)
    } else if summary.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_human(out: &mut impl Write, shown: &[&Diagnostic], s: &Summary) -> std::io::Result<()> {
    for d in shown {
        writeln!(out, "{d}")?;
    }
    let resources = plural(s.resources, "resource");
    let files = plural(s.files, "file");
    if s.errors == 0 && s.warnings == 0 && s.infos == 0 {
        writeln!(
            out,
            "✔ No validation issues found when analyzing {resources} in {files}."
        )
    } else {
        writeln!(
            out,
            "{} in {resources} in {files}: {}, {}, {}.",
            if s.errors > 0 {
                "✘ Analysis found problems"
            } else {
                "✔ Analysis passed with notes"
            },
            plural(s.errors, "error"),
            plural(s.warnings, "warning"),
            plural(s.infos, "info"),
        )
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
