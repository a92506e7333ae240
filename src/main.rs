//! The `canopy` binary: parse flags, load config, hand over to [`canopy::app`].

use std::path::PathBuf;
use std::process::ExitCode;

use canopy::config::Config;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "canopy", version, about = "A virtual-cluster API proxy for Kubernetes")]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CANOPY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the proxy until SIGTERM.
    Serve {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Serve the proxy as a sidecar: plain HTTP on loopback for a frontend in the same pod, acting
    /// as the pod's token or as the end user the frontend names in X-Remote-* headers.
    Sidecar {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print a kubeconfig that points USER at this Canopy.
    Kubeconfig {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// User the kubeconfig is for.
        #[arg(long)]
        user: String,
        /// Bearer token to embed; default: the user's token from the static token file.
        #[arg(long, env = "CANOPY_TOKEN")]
        token: Option<String>,
        /// View (tree path, e.g. `acme/web`) the kubeconfig's server URL selects; default: the
        /// user's home node.
        #[arg(long)]
        view: Option<String>,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        /// Configuration file.
        config: PathBuf,
    },
    /// Print the tenancy tree: nodes, namespaces, members and effective ceilings.
    Tree {
        /// Configuration file.
        config: PathBuf,
        /// Also read the namespaces that exist upstream (with the config's `upstream` settings):
        /// mark declared ones present or missing, list undeclared ones under their owner.
        #[arg(long)]
        live: bool,
    },
    /// Print the JSON schema of the configuration file (for editors).
    Schema {
        /// Print the configuration reference in Markdown instead (docs/config-reference.md).
        #[arg(long)]
        markdown: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // ring is the only provider compiled in; installing it explicitly keeps rustls from guessing.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("canopy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(canopy::app::serve(config))
        }
        Command::Sidecar { config } => {
            let config = Config::load(&config)?;
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(canopy::app::sidecar(config))
        }
        Command::Kubeconfig { config, user, token, view } => {
            println!("{}", canopy::app::kubeconfig(&Config::load(&config)?, &user, token, view.as_deref())?);
            Ok(())
        }
        Command::CheckConfig { config } => {
            let loaded = Config::load(&config)?;
            println!("{}: ok ({} tree nodes)", config.display(), loaded.tree.nodes.len());
            Ok(())
        }
        Command::Tree { config, live: false } => {
            print!("{}", Config::load(&config)?.tree.render());
            Ok(())
        }
        Command::Tree { config, live: true } => {
            let config = Config::load(&config)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let namespaces = runtime.block_on(canopy::tree::live::read(&config.upstream))?;
            print!("{}", config.tree.render_live(&namespaces));
            Ok(())
        }
        Command::Schema { markdown: false } => {
            print!("{}", canopy::config::schema::render());
            Ok(())
        }
        Command::Schema { markdown: true } => {
            print!("{}", canopy::config::reference::render(&canopy::config::schema::json_schema()));
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANOPY_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
