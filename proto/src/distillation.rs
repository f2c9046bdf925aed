//! Facts of the distillation methods' reference commands that the coordinator (filling in a
//! sweep's defaults) and the agents (benchmarks) both use.

/// The settings of IDM's and BACON's official commands (their `command.txt`) that depend on the
/// dataset and the IPC.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IdmOfficial {
    pub batch_real: u32,
    pub ce_weight: f64,
    pub net_generate_interval: u32,
    pub model_train_steps: u32,
    pub eval_interval: u32,
}

/// [`IdmOfficial`] for `dataset` (a sweep's dataset name) at `ipc`, for BACON's command when
/// `bacon`: IPC 1 matches 5,000 real images per class and pushes a net every 5 iterations; the
/// cross-entropy weight is 0.5 at IPC 1 (and CIFAR-10's IPC 10), else 0.1; CIFAR-100 at IPC 10
/// (and BACON's at IPC 50 too) trains its nets 50 steps; IPC 50 evaluates every 500 iterations.
pub fn idm_official(dataset: &str, ipc: u32, bacon: bool) -> IdmOfficial {
    let ce_weight = match (dataset, ipc) {
        (_, 1) => 0.5,
        ("cifar10" | "synthetic", 10) => 0.5,
        _ => 0.1,
    };
    IdmOfficial {
        batch_real: if ipc == 1 { 5_000 } else { 256 },
        ce_weight,
        net_generate_interval: if ipc == 1 { 5 } else { 30 },
        model_train_steps: match (dataset, ipc) {
            ("cifar100", 10) => 50,
            ("cifar100", 50) if bacon => 50,
            _ => 10,
        },
        eval_interval: if ipc >= 50 { 500 } else { 100 },
    }
}

/// DC's and DSA's (outer, inner) loops for an IPC, as `get_loops` in the reference's `utils.py`
/// gives them; `None` for an IPC it has none for.
pub fn official_loops(ipc: u32) -> Option<(u32, u32)> {
    match ipc {
        1 => Some((1, 1)),
        10 => Some((10, 50)),
        20 => Some((20, 25)),
        30 => Some((30, 20)),
        40 => Some((40, 15)),
        50 => Some((50, 10)),
        _ => None,
    }
}
