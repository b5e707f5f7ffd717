//! `kubesim serve --kubeconfig FILE [--image NAME=PATH ...] [--request-log FILE] [--state-dir DIR]
//! [--listen ADDR]`: serves until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: kubesim serve --kubeconfig FILE [--image NAME=PATH ...] [--request-log FILE] [--state-dir DIR] [--listen ADDR]

Starts a Kubernetes API server stand-in on loopback HTTPS with a kubelet that runs pods whose
image is mapped (--image NAME=PATH) as local processes. Writes an admin kubeconfig to FILE once
ready and serves until SIGTERM.";

fn parse(args: &[String]) -> Result<kubesim::Config, String> {
    if args.first().map(String::as_str) != Some("serve") {
        return Err(USAGE.to_owned());
    }
    let mut kubeconfig = None;
    let mut config = kubesim::Config::new("");
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"));
        match a.as_str() {
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(value("--kubeconfig")?)),
            "--image" => {
                let v = value("--image")?;
                let (name, path) = v.split_once('=').ok_or_else(|| format!("--image takes NAME=PATH, got {v:?}"))?;
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(format!("--image {name}: {} is not a file", path.display()));
                }
                config.images.push((name.to_owned(), path));
            }
            "--request-log" => config.request_log = Some(PathBuf::from(value("--request-log")?)),
            "--state-dir" => config.state_dir = Some(PathBuf::from(value("--state-dir")?)),
            "--listen" => {
                let v = value("--listen")?;
                config.listen = v.parse().map_err(|e| format!("--listen {v:?}: {e}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    config.kubeconfig = kubeconfig.ok_or_else(|| format!("--kubeconfig is required\n\n{USAGE}"))?;
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let running = match kubesim::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubesim: {e:#}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(address = %running.address, kubeconfig = %running.kubeconfig.display(), "kubesim ready");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kubesim: cannot watch SIGTERM: {e}");
            return ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    running.kubelet.shutdown().await;
    ExitCode::SUCCESS
}
