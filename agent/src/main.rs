//! The `agent` binary: parses flags, reports the devices libtorch sees, runs the worker, the
//! attack bench, or the offline `eval`, `export` and `datasets fetch` commands.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use beard_agent::bench::{self, BenchConfig};
use beard_agent::cli::datasets::{self, FetchConfig};
use beard_agent::cli::eval::{self as offline_eval, EvalConfig};
use beard_agent::cli::export;
use beard_agent::data::fetch::{DATASETS, FetchError, Progress};
use beard_agent::precision::{Tf32, Work};
use beard_agent::tch_backend::{TchBackend, parse_device};
use beard_agent::worker::{self, WorkerConfig};
use beard_formats::state_dict::Format;
use beard_proto::evaluation::mode_name;
use beard_proto::process::LogFormat;
use beard_proto::v1::{EvaluationMode, ModelConfig, NormKind, PoolKind, TargetPolicy};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Parser)]
#[command(name = "agent", version, about = "Train and attack BEARD models on this node's devices", long_about = None)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "BEARD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lease tasks from a coordinator and run them on one device until stopped.
    Run(RunArgs),
    /// Train a ConvNet on the built-in synthetic dataset and print images per second per attack,
    /// or (with --adversarial-training) of standard and adversarial training.
    Bench(BenchArgs),
    /// Evaluate a checkpoint on a dataset's test split: clean accuracy, and robust accuracy under
    /// each attack.
    Eval(EvalArgs),
    /// Write a checkpoint (safetensors or PyTorch) as safetensors or as a PyTorch state-dict file.
    Export(ExportArgs),
    /// Get the real datasets: `datasets fetch cifar10|cifar100|tinyimagenet --to DIR`.
    Datasets(DatasetsArgs),
}

#[derive(clap::Args)]
struct DatasetsArgs {
    #[command(subcommand)]
    command: DatasetsCommand,
}

#[derive(Subcommand)]
enum DatasetsCommand {
    /// Download a dataset's official archive, check its published MD5 and unpack it into DIR
    /// (CIFAR-10 to DIR/cifar-10-batches-bin, CIFAR-100 to DIR/cifar-100-binary, TinyImageNet to
    /// DIR/tiny-imagenet-200: the directory to pass as --data-dir or a sweep's root).
    Fetch(FetchArgs),
}

#[derive(clap::Args)]
struct FetchArgs {
    /// The dataset.
    #[arg(value_parser = DATASETS)]
    dataset: String,
    /// Directory to unpack into.
    #[arg(long)]
    to: PathBuf,
    /// An archive downloaded elsewhere: check and unpack it instead of downloading.
    #[arg(long, conflicts_with = "url")]
    archive: Option<PathBuf>,
    /// Download from this address instead of the official one (tests; mirrors).
    #[arg(long, hide = true)]
    url: Option<String>,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The checkpoint: safetensors, or a PyTorch `torch.save(model.state_dict())` file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset whose test split to evaluate on: cifar10, cifar100, tinyimagenet or synthetic.
    #[arg(long)]
    dataset: String,
    /// Directory holding the dataset's files (e.g. `cifar-10-batches-bin`); not needed for
    /// `synthetic`.
    #[arg(long, visible_alias = "data-root")]
    data_dir: Option<PathBuf>,
    /// Attacks as `NAME[:key=value,...]` (e.g. `pgd:eps=8/255,steps=10`); repeat or separate with
    /// commas, semicolons or spaces. Parameters not written take BEARD's defaults.
    #[arg(long = "attack")]
    attacks: Vec<String>,
    /// Run the attacks targeted, choosing targets this way (beard-compat always takes
    /// (y + 1) % 10).
    #[arg(long, value_enum)]
    targeted: Option<TargetArg>,
    /// Evaluation mode. `standard`: attacks in [0, 1] pixel space, normalization inside the model.
    /// `beard-compat`: BEARD's reference protocol, to reproduce its published numbers: attacks on
    /// mean/std-normalized images clamped to [0, 1], budgets in normalized units, PGD step 2/225
    /// without random start and AutoAttack with 10 iterations (whatever the attack spec says),
    /// targets (y + 1) % 10, times of the whole pass.
    #[arg(long, value_enum, default_value_t = ModeArg::Standard)]
    mode: ModeArg,
    /// Evaluate the first N test images; 0 means all.
    #[arg(long, visible_alias = "n", default_value_t = 0)]
    limit: usize,
    /// Device to run on: `cpu`, `cuda:N` or `auto`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Images per chunk; 0 takes the device's default (50 on a CPU, 1000 on a GPU).
    #[arg(long, default_value_t = 0)]
    batch_size: usize,
    /// Let the attacks use TF32 on a GPU (`all`; `training` changes nothing here). Off by
    /// default: exact float32, as on the CPU. The report's device says which was used.
    #[arg(long, value_enum, default_value_t = Tf32::Off)]
    tf32: Tf32,
    /// Also judge each attack's examples with this checkpoint (same model shape): a transfer
    /// attack from --checkpoint to it. Repeat for several.
    #[arg(long = "judge")]
    judges: Vec<PathBuf>,
    /// ConvNet width.
    #[arg(long, default_value_t = 128)]
    width: u32,
    /// ConvNet depth; 0 takes DC-bench's for the image size (3 for 32x32, 4 for 64x64).
    #[arg(long, default_value_t = 0)]
    depth: u32,
    /// Normalization layer of each block.
    #[arg(long, value_enum, default_value_t = NormArg::Instance)]
    norm: NormArg,
    /// Pooling layer of each block.
    #[arg(long, value_enum, default_value_t = PoolArg::Avg)]
    pool: PoolArg,
    /// Seed of random starts and random targets.
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Standard,
    BeardCompat,
}

#[derive(Clone, Copy, ValueEnum)]
enum TargetArg {
    Next,
    Random,
    LeastLikely,
}

#[derive(Clone, Copy, ValueEnum)]
enum NormArg {
    Instance,
    Batch,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum PoolArg {
    Avg,
    Max,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// The checkpoint to read: safetensors or a PyTorch state-dict file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// Format to write; by default the one `--out`'s extension names (.safetensors, .pt, .pth).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Safetensors,
    Pytorch,
}

/// Distillation methods `agent bench --distill` can time.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DistillArg {
    /// Distribution matching (Zhao & Bilen), with siamese DSA.
    Dm,
    /// Gradient matching (Zhao, Mopuri & Bilen), with the official loops for --ipc.
    Dc,
    /// Gradient matching with siamese DSA (Zhao & Bilen).
    Dsa,
    /// DM through a queue of trained ConvNets on mosaic images, with the official settings for
    /// --ipc.
    Idm,
    /// IDM with BACON's matching term.
    Bacon,
}

impl DistillArg {
    fn method(self) -> bench::DistillMethod {
        match self {
            DistillArg::Dm => bench::DistillMethod::Dm,
            DistillArg::Dc => bench::DistillMethod::Dc,
            DistillArg::Dsa => bench::DistillMethod::Dsa,
            DistillArg::Idm => bench::DistillMethod::Idm,
            DistillArg::Bacon => bench::DistillMethod::Bacon,
        }
    }
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Attacks as `NAME:key=value,...` (e.g. `pgd:eps=8/255,alpha=2/255,steps=10`), separated
    /// by commas, semicolons or spaces; parameters not written take BEARD's defaults. With
    /// --adversarial-training, the attacks that craft the training examples (default Madry's
    /// `pgd:eps=8/255,alpha=2/255,steps=10,random_start=true`).
    #[arg(long, num_args = 1.., required_unless_present_any = ["adversarial_training", "distill"])]
    attacks: Vec<String>,
    /// Measure dataset distillation instead: distil the synthetic training split at --ipc with
    /// this method for --iterations iterations of --batch-real real images per class; prints
    /// iterations per second.
    #[arg(long, value_enum, conflicts_with_all = ["attacks", "adversarial_training"])]
    distill: Option<DistillArg>,
    /// Distillation iterations (with --distill).
    #[arg(long, default_value_t = 20)]
    iterations: u32,
    /// Real images per class and distillation iteration (with --distill; the official 256).
    #[arg(long, default_value_t = 256)]
    batch_real: u32,
    /// Measure training instead of attacks: standard training, then adversarial training with
    /// each attack, on an IPC set for --epochs epochs; prints training images per second.
    #[arg(long)]
    adversarial_training: bool,
    /// Images per class of the synthetic training subset (the paper's largest setting is 50).
    #[arg(long, default_value_t = 10)]
    ipc: u32,
    /// Test images per attack (the synthetic test split has 1000).
    #[arg(long, default_value_t = 500)]
    n: u32,
    /// Device to run on: `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Images per chunk; 0 takes the device's default (50 on a CPU, 1000 on a GPU).
    #[arg(long, default_value_t = 0)]
    batch_size: u32,
    /// ConvNet width (DC-bench's is 128).
    #[arg(long, default_value_t = 128)]
    width: u32,
    /// Training epochs of the bench model.
    #[arg(long, default_value_t = 20)]
    epochs: u32,
    /// Run the attacks targeted (next-class targets).
    #[arg(long)]
    targeted: bool,
    /// Seed of the model's training.
    #[arg(long, default_value_t = 0)]
    seed: u32,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The coordinator's address.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "BEARD_COORDINATOR")]
    coordinator: String,
    /// Device to run on: `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu", env = "BEARD_DEVICE")]
    device: String,
    /// Directory for cached checkpoints and datasets.
    #[arg(long, default_value = "beard-agent", env = "BEARD_WORK_DIR")]
    work_dir: PathBuf,
    /// Name of this agent; defaults to `<hostname>-<device>`.
    #[arg(long, env = "BEARD_AGENT_NAME")]
    name: Option<String>,
    /// File holding the coordinator's bearer token (else `BEARD_TOKEN`).
    #[arg(long, env = "BEARD_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    tls: beard_proto::tls::ClientTlsArgs,
    /// Seconds a running task may take to finish after SIGTERM before it is handed back.
    #[arg(long, default_value_t = 60.0)]
    drain_timeout_secs: f64,
    /// Seconds between two snapshots of a running distillation; a distill task whose agent dies
    /// resumes from the last one the coordinator received.
    #[arg(long, default_value_t = 60.0, env = "BEARD_SNAPSHOT_EVERY_SECS")]
    snapshot_every_secs: f64,
    /// Where a GPU may use TF32: `off` (exact float32, the default, as on the CPU), `training`
    /// or `all`. Every result's device description names the precision that produced it.
    #[arg(long, value_enum, default_value_t = Tf32::Off, env = "BEARD_TF32")]
    tf32: Tf32,
}

fn main() -> std::process::ExitCode {
    beard_agent::host_memory::keep_freed_memory();
    // Every command computes in exact float32 on GPUs (TF32 off, deterministic cuDNN).
    beard_agent::precision::use_exact_fp32();
    let cli = Cli::parse();
    beard_proto::process::init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Bench(args) => run_bench(&args),
        Command::Eval(args) => run_eval(&args),
        Command::Export(args) => run_export(&args),
        Command::Datasets(DatasetsArgs { command: DatasetsCommand::Fetch(args) }) => run_fetch(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", beard_proto::process::error_chain(error.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    log_visible_devices();
    let device = parse_device(&args.device)?;
    let name = args.name.unwrap_or_else(|| format!("{}-{}", hostname(), args.device.replace(':', "")));
    let config = WorkerConfig {
        coordinator: args.coordinator,
        token: beard_proto::auth::Token::from_file_or_env(args.token_file.as_deref())?,
        tls: args.tls,
        name,
        work_dir: args.work_dir,
        drain_timeout: Duration::from_secs_f64(args.drain_timeout_secs),
        snapshot_every: Duration::from_secs_f64(args.snapshot_every_secs),
    };
    worker::run(config, TchBackend::with_tf32(device, args.tf32), beard_proto::process::shutdown_signal()).await
}

/// The attack adversarial training crafts its examples with unless told otherwise.
const MADRY_PGD: &str = "pgd:eps=8/255,alpha=2/255,steps=10,random_start=true";

fn run_bench(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(method) = args.distill {
        return run_distill_bench(args, method);
    }
    let mut attacks = Vec::new();
    for list in &args.attacks {
        attacks.extend(beard_agent::attack_spec::parse_list(list)?);
    }
    if attacks.is_empty() {
        attacks = beard_agent::attack_spec::parse_list(MADRY_PGD)?;
    }
    let config = BenchConfig {
        attacks,
        images: args.n,
        device: parse_device(&args.device)?,
        batch_size: args.batch_size,
        width: args.width,
        epochs: args.epochs,
        ipc: args.ipc,
        targeted: args.targeted,
        seed: args.seed,
    };
    if args.adversarial_training {
        return run_training_bench(&config);
    }
    println!(
        "device {}, {} torch threads, ConvNet width {}, {} mode",
        beard_agent::tch_backend::describe(config.device),
        tch::get_num_threads(),
        config.width,
        if config.targeted { "targeted" } else { "untargeted" }
    );
    println!("{:>10} {:>10} {:>9} {:>9} {:>9}  attack", "images/s", "clean/s", "seconds", "clean%", "robust%");
    bench::run(&config, |row| {
        println!(
            "{:>10.1} {:>10.1} {:>9.3} {:>9.1} {:>9.1}  {} ({} images)",
            row.attack_images_per_second,
            row.clean_images_per_second,
            row.attack_seconds,
            row.clean_accuracy,
            row.robust_accuracy,
            row.attack,
            row.images
        );
    })?;
    Ok(())
}

fn run_distill_bench(args: &BenchArgs, method: DistillArg) -> anyhow::Result<()> {
    let name = format!("{method:?}").to_lowercase();
    let config = bench::DistillBenchConfig {
        device: parse_device(&args.device)?,
        method: method.method(),
        width: args.width,
        ipc: args.ipc,
        iterations: args.iterations,
        batch_real: args.batch_real,
        seed: args.seed,
    };
    println!(
        "device {}, {} torch threads, ConvNet width {}, {name} on synthetic, IPC {}, batch_real {} per class",
        beard_agent::tch_backend::describe(config.device),
        tch::get_num_threads(),
        config.width,
        config.ipc,
        config.batch_real
    );
    let row = bench::run_distill(&config)?;
    println!("{:>12} {:>9} {:>10}  method", "iterations/s", "seconds", "iterations");
    println!("{:>12.3} {:>9.3} {:>10}  {name}", row.iterations_per_second, row.seconds, row.iterations);
    Ok(())
}

fn run_training_bench(config: &BenchConfig) -> anyhow::Result<()> {
    println!(
        "device {}, {} torch threads, ConvNet width {}, synthetic IPC {}, {} epochs, batch 128, {} examples",
        beard_agent::tch_backend::describe(config.device),
        tch::get_num_threads(),
        config.width,
        config.ipc,
        config.epochs,
        if config.targeted { "targeted" } else { "untargeted" }
    );
    println!("{:>10} {:>9} {:>7} {:>9}  training", "images/s", "seconds", "cost", "loss");
    bench::run_adversarial_training(config, |row| {
        println!(
            "{:>10.1} {:>9.3} {:>6.2}x {:>9.4}  {} ({} images x {} epochs)",
            row.images_per_second, row.train_seconds, row.cost, row.final_loss, row.training, row.images, row.epochs
        );
    })?;
    Ok(())
}

fn run_eval(args: &EvalArgs) -> anyhow::Result<()> {
    beard_agent::precision::use_for(args.tf32, Work::Attack);
    let mut attacks = Vec::new();
    for list in &args.attacks {
        attacks.extend(beard_agent::attack_spec::parse_list(list)?);
    }
    let config = EvalConfig {
        checkpoint: args.checkpoint.clone(),
        dataset: args.dataset.clone(),
        data_dir: args.data_dir.clone().unwrap_or_default(),
        model: ModelConfig {
            width: args.width,
            depth: args.depth,
            norm: match args.norm {
                NormArg::Instance => NormKind::Instance,
                NormArg::Batch => NormKind::Batch,
                NormArg::None => NormKind::None,
            } as i32,
            pool: match args.pool {
                PoolArg::Avg => PoolKind::Avg,
                PoolArg::Max => PoolKind::Max,
            } as i32,
        },
        attacks,
        targets: args.targeted.map(|policy| match policy {
            TargetArg::Next => TargetPolicy::Next,
            TargetArg::Random => TargetPolicy::Random,
            TargetArg::LeastLikely => TargetPolicy::LeastLikely,
        }),
        mode: match args.mode {
            ModeArg::Standard => EvaluationMode::Standard,
            ModeArg::BeardCompat => EvaluationMode::BeardCompat,
        },
        limit: args.limit,
        device: parse_device(&args.device)?,
        batch_size: args.batch_size,
        seed: args.seed,
        judges: args.judges.clone(),
    };
    let json = args.json;
    let report = offline_eval::run(&config, |attack| {
        if !json {
            println!(
                "{:>7.2} % robust, {:>6.2} % success, {:>8.3} s (clean {:.3} s)  {}{}",
                attack.accuracy,
                attack.success_rate,
                attack.seconds,
                attack.clean_seconds,
                attack.spec,
                if attack.targeted { " targeted" } else { "" }
            );
            for judge in &attack.transfer {
                println!("{:>7.2} % robust on judge {}", judge.accuracy, judge.checkpoint);
            }
        }
    })?;
    if json {
        println!("{}", report.to_json());
    } else {
        println!(
            "{:>7.2} % clean ({}/{} {} test images, {:.3} s on {}; {} evaluation)",
            report.clean_accuracy,
            report.correct,
            report.n,
            report.dataset,
            report.clean_seconds,
            report.device,
            mode_name(report.mode)
        );
    }
    Ok(())
}

fn run_export(args: &ExportArgs) -> anyhow::Result<()> {
    let format = args.format.map(|format| match format {
        FormatArg::Safetensors => Format::Safetensors,
        FormatArg::Pytorch => Format::Pytorch,
    });
    let exported = export::run(&args.checkpoint, &args.out, format)?;
    println!(
        "wrote {} ({:?}, {} tensors, {} bytes)",
        args.out.display(),
        exported.format,
        exported.tensors,
        exported.bytes
    );
    Ok(())
}

fn run_fetch(args: FetchArgs) -> anyhow::Result<()> {
    let config = FetchConfig { dataset: args.dataset, to: args.to, url: args.url, archive: args.archive };
    let bar = ProgressBar::hidden();
    let root = datasets::run(&config, |progress| match progress {
        Progress::Downloading { url, total } => {
            eprintln!("downloading {url}{}", total.map(|t| format!(" ({t} bytes)")).unwrap_or_default());
            if std::io::stderr().is_terminal() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            bar.set_length(total.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
        Progress::Received(bytes) => bar.set_position(bytes),
        Progress::Verifying => {
            bar.finish_and_clear();
            eprintln!("checking the published MD5");
        }
        Progress::Extracting => eprintln!("unpacking"),
    })
    .map_err(|error| match error {
        FetchError::Download { .. } => anyhow::anyhow!(
            "{error}\n(without network access, download the archive elsewhere and pass it with --archive FILE)"
        ),
        other => other.into(),
    })?;
    println!("{} is ready in {}", config.dataset, root.display());
    Ok(())
}

/// Log what libtorch sees, so an operator can tell at once whether the GPUs are usable.
fn log_visible_devices() {
    let cuda = tch::Cuda::is_available();
    let count = if cuda { tch::Cuda::device_count() } else { 0 };
    tracing::info!(
        cuda_available = cuda,
        cuda_devices = count,
        cudnn = tch::Cuda::cudnn_is_available(),
        cpu_threads = tch::get_num_threads(),
        "libtorch devices"
    );
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "agent".to_owned())
}
