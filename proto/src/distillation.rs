//! Facts of the distillation methods' reference commands that the coordinator (filling in a
//! sweep's defaults) and the agents (benchmarks) both use.

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
