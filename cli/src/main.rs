//! `pinak`: the Pinak command line. Mints development tokens and talks to a running Pinak API
//! over HTTP (never to its database).

mod client;
mod jsonl;
mod mcp;
mod memory;
mod mint;
mod ops;
mod output;
mod profile;
mod review;
mod streams;
mod transfer;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  any other failure (for example, writing the output failed)
  2  usage error (bad arguments, a refused signing secret)
  3  the API could not be reached (connection refused, DNS, TLS, timeout)
  4  authentication or permission failure (no token, 401, 403)
  5  any other error answer from the API (its `detail` is shown)
  6  bad input data (a malformed file or line; nothing was sent)";

/// Pinak command line: mint development tokens and use a running Pinak API.
#[derive(Debug, Parser)]
#[command(name = "pinak", version, arg_required_else_help = true, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Base URL of the Pinak API [default: the profile's, else http://127.0.0.1:8000]
    #[arg(long, global = true, env = "PINAK_URL")]
    url: Option<String>,
    /// Bearer token for the API [default: the profile's]
    #[arg(long, global = true, env = "PINAK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON instead of a table
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for each request [default: the profile's, else 30]
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: Option<u64>,
    /// Profile file [default: $XDG_CONFIG_HOME/pinak/config.toml or ~/.config/pinak/config.toml]
    #[arg(long, global = true, env = "PINAK_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Profile of the file to use [default: default]
    #[arg(long, global = true, env = "PINAK_PROFILE")]
    profile: Option<String>,
}

/// The connection settings in force: flags and environment over the profile over defaults.
#[derive(Debug)]
pub struct Global {
    url: String,
    token: Option<String>,
    json: bool,
    timeout: u64,
}

const DEFAULT_URL: &str = "http://127.0.0.1:8000";
const DEFAULT_TIMEOUT: u64 = 30;

impl GlobalArgs {
    fn resolve(&self) -> Result<Global, Failure> {
        let p = profile::load(self.config.as_deref(), self.profile.as_deref())?;
        let timeout = self.timeout.or(p.timeout).unwrap_or(DEFAULT_TIMEOUT);
        if !(1..=3600).contains(&timeout) {
            return Err(Failure::Usage(format!("the profile's timeout must be 1-3600 seconds, got {timeout}")));
        }
        Ok(Global {
            url: self.url.clone().or(p.url).unwrap_or_else(|| DEFAULT_URL.to_owned()),
            token: self.token.clone().or(p.token),
            json: self.json,
            timeout,
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Tokens
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Same as `token mint` (the name scripts and the Helm chart's notes use)
    #[command(hide = true)]
    Mint(mint::MintArgs),
    Add(memory::AddArgs),
    Search(memory::SearchArgs),
    Get(memory::GetArgs),
    Context(memory::ContextArgs),
    Stats(ops::StatsArgs),
    /// Review memories the quarantine policy held back (admin)
    Proposals {
        #[command(subcommand)]
        command: review::ProposalsCommand,
    },
    Revoke(review::RevokeArgs),
    /// Events of the project
    Events {
        #[command(subcommand)]
        command: streams::EventsCommand,
    },
    /// Session transcript lines
    Session {
        #[command(subcommand)]
        command: streams::SessionCommand,
    },
    /// Working-memory notes
    Working {
        #[command(subcommand)]
        command: streams::WorkingCommand,
    },
    /// The tenant's client registry
    Clients {
        #[command(subcommand)]
        command: streams::ClientsCommand,
    },
    Export(transfer::ExportArgs),
    Import(transfer::ImportArgs),
    /// Check that the API is reachable and ready and that it accepts the token
    Doctor,
    /// Serve the API's MCP tools on stdin/stdout, for agents that launch MCP servers as commands
    Mcp,
    /// Print a shell completion script, e.g. `pinak completions bash > ~/.local/share/bash-completion/completions/pinak`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    Mint(mint::MintArgs),
}

/// Why a command failed; each kind has its own exit status (see `EXIT_CODES`).
#[derive(Debug)]
pub enum Failure {
    Usage(String),
    Unreachable(String),
    Auth(String),
    Api(String),
    Input(String),
    Other(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Other(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
            Failure::Auth(_) => 4,
            Failure::Api(_) => 5,
            Failure::Input(_) => 6,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(m)
            | Failure::Unreachable(m)
            | Failure::Auth(m)
            | Failure::Api(m)
            | Failure::Input(m)
            | Failure::Other(m) => m,
        }
    }

    /// The same failure with `note` appended to its message.
    pub fn context(self, note: String) -> Self {
        let add = |m: String| format!("{m} ({note})");
        match self {
            Failure::Usage(m) => Failure::Usage(add(m)),
            Failure::Unreachable(m) => Failure::Unreachable(add(m)),
            Failure::Auth(m) => Failure::Auth(add(m)),
            Failure::Api(m) => Failure::Api(add(m)),
            Failure::Input(m) => Failure::Input(add(m)),
            Failure::Other(m) => Failure::Other(add(m)),
        }
    }
}

fn run(cli: &Cli) -> Result<String, Failure> {
    // Minting and completions need no connection settings (and no profile file).
    let g = || cli.global.resolve();
    match &cli.command {
        Command::Token { command: TokenCommand::Mint(args) } | Command::Mint(args) => mint::run(args),
        Command::Completions { shell } => completions(*shell),
        Command::Add(args) => memory::add(&g()?, args),
        Command::Search(args) => memory::search(&g()?, args),
        Command::Get(args) => memory::get(&g()?, args),
        Command::Context(args) => memory::context(&g()?, args),
        Command::Stats(args) => ops::stats(&g()?, args),
        Command::Proposals { command } => review::proposals(&g()?, command),
        Command::Revoke(args) => review::revoke(&g()?, args),
        Command::Events { command } => streams::events(&g()?, command),
        Command::Session { command } => streams::session(&g()?, command),
        Command::Working { command } => streams::working(&g()?, command),
        Command::Clients { command } => streams::clients(&g()?, command),
        Command::Export(args) => transfer::export(&g()?, args),
        Command::Import(args) => transfer::import(&g()?, args),
        Command::Doctor => ops::doctor(&g()?),
        Command::Mcp => mcp::run(&g()?),
    }
}

fn completions(shell: clap_complete::Shell) -> Result<String, Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pinak", &mut script);
    String::from_utf8(script).map_err(|e| Failure::Other(format!("completion script is not UTF-8: {e}")))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 on usage errors and 0 for --help/--version, as documented.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(&cli) {
        // `mcp` has written its protocol stream and has nothing to add.
        Ok(out) if out.is_empty() => ExitCode::SUCCESS,
        Ok(out) => {
            // Write errors (e.g. a closed pipe) must not panic.
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{out}").and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(f) => {
            eprintln!("pinak: {}", f.message());
            ExitCode::from(f.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_the_commands() {
        Cli::command().debug_assert();
        let bash = completions(clap_complete::Shell::Bash).unwrap();
        assert!(bash.contains("pinak") && bash.contains("context") && bash.contains("--jsonl"), "{bash}");
    }
}
