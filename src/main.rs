//! The `canopy` binary: parse flags, load config, hand over to [`canopy::app`]. Installed under
//! the name `kubectl-canopy` (as krew links it), the same binary is a kubectl plugin:
//! `kubectl canopy tree|who-can|access-matrix|kubeconfig|check-config`.

use std::path::PathBuf;
use std::process::ExitCode;

use canopy::access::command::{self as access, Format, MatrixArgs, WhoCanArgs};
use canopy::config::Config;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Translating answers builds and drops many small values per item; mimalloc's per-thread pages
/// make that markedly cheaper than the system allocator (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        #[arg(long, short, env = "CANOPY_CONFIG")]
        config: PathBuf,
    },
    /// Serve the proxy as a sidecar: plain HTTP on loopback for a frontend in the same pod, acting
    /// as the pod's token or as the end user the frontend names in X-Remote-* headers.
    Sidecar {
        /// Configuration file.
        #[arg(long, short, env = "CANOPY_CONFIG")]
        config: PathBuf,
    },
    /// Print a kubeconfig that points USER at this Canopy.
    Kubeconfig {
        /// Configuration file.
        #[arg(long, short, env = "CANOPY_CONFIG")]
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
        #[arg(env = "CANOPY_CONFIG")]
        config: PathBuf,
    },
    /// Print the tenancy tree: nodes, namespaces, members and effective ceilings.
    Tree {
        /// Configuration file.
        #[arg(env = "CANOPY_CONFIG")]
        config: PathBuf,
        /// Also read the namespaces that exist upstream (with the config's `upstream` settings):
        /// mark declared ones present or missing, list undeclared ones under their owner.
        #[arg(long)]
        live: bool,
    },
    /// Who may do VERB on RESOURCE through Canopy: the members whose nodes reach the namespace,
    /// each decided by its view's ceiling, then by the apiserver asked as that member.
    WhoCan {
        /// `get`, `list`, `create`, `delete`, … (`*` for every verb).
        verb: String,
        /// `pods`, `deployments.apps`, `deploy`, `pods/exec`, …
        resource: String,
        /// Namespace, named as `--view` names it (physical without `--view`); absent: every
        /// namespace of the view (of the tree, without `--view`).
        #[arg(long, short)]
        namespace: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// What USER may do through Canopy: resources × verbs (get list watch create update patch
    /// delete), each cell decided as Canopy decides the request.
    AccessMatrix {
        /// User name (`alice`, `system:serviceaccount:ns:name`).
        #[arg(long)]
        user: String,
        /// The user's groups, comma-separated (`system:authenticated` is always added).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Namespace, named as `--view` names it (physical without `--view`); absent: the
        /// cluster-scoped resources.
        #[arg(long, short)]
        namespace: Option<String>,
        /// Also list the value bounds that narrow the allowed writes, next to their resource.
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Print the JSON schema of the configuration file (for editors).
    Schema {
        /// Print the configuration reference in Markdown instead (docs/config-reference.md).
        #[arg(long)]
        markdown: bool,
    },
}

/// What `who-can` and `access-matrix` share.
#[derive(Args)]
struct Common {
    /// Configuration file.
    #[arg(long, short, env = "CANOPY_CONFIG")]
    config: PathBuf,
    /// View (tree path, e.g. `acme/web`) the question is asked in; default: the user's home node
    /// (`access-matrix`), each member's own node (`who-can`).
    #[arg(long)]
    view: Option<String>,
    /// Ask the apiserver with this kubeconfig instead of the config's `upstream` (it needs
    /// `impersonate` on users, groups and service accounts).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Context within `--kubeconfig`.
    #[arg(long, requires = "kubeconfig")]
    context: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    output: Format,
}

impl Common {
    /// The config, its upstream replaced by `--kubeconfig` if given.
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(&self.config)?;
        if let Some(kubeconfig) = &self.kubeconfig {
            config.upstream.kubeconfig = Some(kubeconfig.clone());
            config.upstream.context = self.context.clone();
        }
        Ok(config)
    }
}

/// The name kubectl finds a plugin by: `kubectl canopy …` runs `kubectl-canopy …` from `PATH`.
const PLUGIN_NAME: &str = "kubectl-canopy";

/// Commands a platform team has no use for from kubectl: still there, left out of the help.
const NOT_PLUGIN_COMMANDS: [&str; 3] = ["serve", "sidecar", "schema"];

/// The command line, spelled as the plugin when the binary was started as `kubectl-canopy`.
fn command_line() -> clap::Command {
    let name = std::env::args_os().next().map(PathBuf::from);
    let as_plugin = name.as_deref().and_then(|path| path.file_stem()).is_some_and(|stem| stem == PLUGIN_NAME);
    let command = Cli::command();
    match as_plugin {
        false => command,
        true => {
            NOT_PLUGIN_COMMANDS.iter().fold(command.name(PLUGIN_NAME).bin_name("kubectl canopy"), |command, hidden| {
                command.mut_subcommand(hidden, |sub| sub.hide(true))
            })
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&command_line().get_matches()).unwrap_or_else(|error| error.exit());
    init_logging(cli.log_format);
    // ring is the only provider compiled in; installing it explicitly keeps rustls from guessing.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match cli.log_format {
                LogFormat::Text => eprintln!("canopy: {error:#}"),
                // Every line on stderr stays one JSON object for log pipelines.
                LogFormat::Json => tracing::error!(error = format!("{error:#}"), "canopy failed"),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            current_thread()?.block_on(canopy::app::serve(config))
        }
        Command::Sidecar { config } => {
            let config = Config::load(&config)?;
            current_thread()?.block_on(canopy::app::sidecar(config))
        }
        Command::Kubeconfig { config, user, token, view } => {
            println!("{}", canopy::app::kubeconfig(&Config::load(&config)?, &user, token, view.as_deref())?);
            Ok(())
        }
        Command::CheckConfig { config } => {
            let loaded = Config::load(&config)?;
            let nodes = loaded.tree.nodes.len() - loaded.tree.controllers.len();
            println!("{}: ok ({nodes} tree nodes, {} controllers)", config.display(), loaded.tree.controllers.len());
            Ok(())
        }
        Command::Tree { config, live: false } => {
            print!("{}", Config::load(&config)?.tree.render());
            Ok(())
        }
        Command::Tree { config, live: true } => {
            let config = Config::load(&config)?;
            let namespaces = current_thread()?.block_on(canopy::upstream::list_namespaces(&config.upstream))?;
            print!("{}", config.tree.render_live(&namespaces));
            Ok(())
        }
        Command::WhoCan { verb, resource, namespace, common } => {
            let config = common.load()?;
            let args = WhoCanArgs { verb, resource, namespace, view: common.view, format: common.output };
            print!("{}", current_thread()?.block_on(access::who_can(&config, &args))?);
            Ok(())
        }
        Command::AccessMatrix { user, groups, namespace, explain, common } => {
            let config = common.load()?;
            let args = MatrixArgs { user, groups, namespace, view: common.view, format: common.output, explain };
            print!("{}", current_thread()?.block_on(access::access_matrix(&config, &args))?);
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

/// The main thread's runtime: for `serve` and `sidecar` it runs reload, the reconciler and the
/// admin port (requests are served on threads of their own, see `canopy::server::threads`); for
/// the other commands, their few upstream calls.
fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANOPY_LOG").unwrap_or_else(|_| "info".into());
    // Colours only for a person at a terminal: a pod's log or a file must stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
