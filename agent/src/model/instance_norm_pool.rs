//! A block's instance norm, ReLU and 2x2 average pooling as one operation, for models whose norm
//! weights collect no gradient (attacks and evaluation).
//!
//! On the CPU, for contiguous float32 activations of even height and width whose planes hold a
//! multiple of 8 values, it runs the fused kernels of `instance_norm_pool.cpp` (compiled by the
//! build script against libtorch's headers): each plane is normalized, activated and pooled in
//! the cache, forward and backward, with libtorch's bits (the C++ file says how, and checks it
//! on each shape's first call), so every attack's numbers stay those of torchattacks on the same
//! model. Anywhere else (CUDA, training, other shapes) it runs libtorch's `group_norm` and the
//! fused ReLU and pooling of [`super::relu_pool`].

use std::ffi::c_char;

use tch::{Device, Kind, TchError, Tensor};
use torch_sys::C_tensor;

use super::relu_pool::relu_avg_pool;
use crate::native::owned_tensor;

unsafe extern "C" {
    fn beard_instance_norm_relu_avg_pool(
        input: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        eps: f64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn beard_instance_norm_pool_fused_calls(forwards: *mut u64, gradients: *mut u64);
}

/// `avg_pool2d(relu(group_norm(x, groups, weight, bias, eps)), 2, 2)` of `x` `[n, c, h, w]`.
pub fn instance_norm_relu_avg_pool(
    x: &Tensor,
    groups: i64,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor, TchError> {
    if fusable(x, groups, weight, bias)? {
        // SAFETY: the tensors are live; the function returns a new owned tensor, or null with a
        // malloc'ed message.
        unsafe {
            owned_tensor("the fused instance norm", |error| {
                beard_instance_norm_relu_avg_pool(x.as_ptr(), weight.as_ptr(), bias.as_ptr(), eps, error)
            })
        }
    } else {
        relu_avg_pool(&x.f_group_norm(groups, Some(weight), Some(bias), eps, true)?)
    }
}

/// How many forward passes and input gradients the fused kernels computed in this process.
pub fn fused_calls() -> (u64, u64) {
    let (mut forwards, mut gradients) = (0, 0);
    // SAFETY: the function writes two integers through valid pointers.
    unsafe { beard_instance_norm_pool_fused_calls(&mut forwards, &mut gradients) };
    (forwards, gradients)
}

/// Whether the shapes are the ones the C++ kernels take.
fn fusable(x: &Tensor, groups: i64, weight: &Tensor, bias: &Tensor) -> Result<bool, TchError> {
    let cpu_float =
        |tensor: &Tensor| tensor.device() == Device::Cpu && tensor.kind() == Kind::Float && tensor.is_contiguous();
    if !(cpu_float(x) && cpu_float(weight) && cpu_float(bias)) || weight.requires_grad() || bias.requires_grad() {
        return Ok(false);
    }
    let (images, channels, height, width) = x.size4()?;
    Ok(images > 0
        && channels > 0
        && groups == channels
        && height > 0
        && width > 0
        && height % 2 == 0
        && width % 2 == 0
        && (height * width) % 8 == 0
        && weight.size() == [channels]
        && bias.size() == [channels])
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-5;

    fn libtorch(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
        x.group_norm(x.size()[1], Some(weight), Some(bias), EPS, true).relu().avg_pool2d(
            [2, 2],
            [2, 2],
            [0, 0],
            false,
            true,
            None::<i64>,
        )
    }

    fn ours(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
        instance_norm_relu_avg_pool(x, x.size()[1], weight, bias, EPS).expect("the fused instance norm")
    }

    type Block = fn(&Tensor, &Tensor, &Tensor) -> Tensor;

    /// Output, and the gradient of `sum(output * direction)` with respect to the input.
    fn pass(block: Block, x: &Tensor, weight: &Tensor, bias: &Tensor) -> (Tensor, Tensor) {
        let input = x.detach().set_requires_grad(true);
        let output = block(&input, weight, bias);
        // Not random: tests on other threads draw from the same global generator.
        let direction = Tensor::arange(output.numel() as i64, (Kind::Float, Device::Cpu))
            .f_remainder(7.0)
            .and_then(|t| t.f_sub_scalar(3.0))
            .and_then(|t| t.f_view(output.size().as_slice()))
            .expect("a direction");
        let gradient = Tensor::run_backward(&[(&output * &direction).sum(Kind::Float)], &[&input], false, false);
        (output.detach(), gradient[0].shallow_clone())
    }

    /// Conv-like activations (every sign, some exactly 0) and a trained-looking affine.
    fn problem(images: i64, channels: i64, height: i64, width: i64) -> (Tensor, Tensor, Tensor) {
        let options = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([images, channels, height, width], options) * 0.7 + 0.2;
        let _ = x.view([-1]).narrow(0, 0, 5).fill_(0.0);
        (x, Tensor::rand([channels], options) + 0.5, Tensor::randn([channels], options) * 0.3)
    }

    /// Ours and libtorch's, twice (the first call of a shape compares the kernels, later ones run
    /// them where they matched): equal outputs and input gradients.
    fn assert_same(shape: (i64, i64, i64, i64)) {
        let (x, weight, bias) = problem(shape.0, shape.1, shape.2, shape.3);
        for round in 0..2 {
            let (output, gradient) = pass(libtorch, &x, &weight, &bias);
            let (fused_output, fused_gradient) = pass(ours, &x, &weight, &bias);
            assert!(fused_output.equal(&output), "output of {shape:?}, round {round}");
            assert!(fused_gradient.equal(&gradient), "input gradient of {shape:?}, round {round}");
            let _no_grad = tch::no_grad_guard();
            assert!(ours(&x, &weight, &bias).equal(&libtorch(&x, &weight, &bias)), "{shape:?} without autograd");
        }
    }

    #[test]
    fn outputs_and_input_gradients_equal_libtorchs() {
        tch::manual_seed(7);
        for shape in
            [(100, 128, 32, 32), (100, 128, 16, 16), (100, 128, 8, 8), (3, 16, 28, 28), (2, 8, 64, 64), (5, 4, 4, 2)]
        {
            assert_same(shape);
        }
    }

    /// A backward pass that builds a graph runs libtorch's differentiable operators: the same
    /// formulas, summed over the gradient's two paths in autograd's order, so equal up to one
    /// rounding (nothing in the agent differentiates twice with frozen norm weights; gradient
    /// matching trains them, and takes libtorch's operators from the start).
    #[test]
    fn double_backward_equals_libtorchs() {
        tch::manual_seed(8);
        let (x, weight, bias) = problem(4, 8, 16, 16);
        let second = |block: Block| {
            let images = x.detach().set_requires_grad(true);
            let output = block(&images, &weight, &bias);
            let objective = (&output * &output).sum(Kind::Float);
            let gradient = Tensor::run_backward(&[objective], &[&images], true, true).remove(0);
            Tensor::run_backward(&[gradient.square().sum(Kind::Float)], &[&images], false, false).remove(0)
        };
        let (ours, theirs) = (second(ours), second(libtorch));
        assert!(ours.abs().sum(Kind::Float).double_value(&[]) > 0.0, "the second derivative reaches the images");
        let worst = (&ours - &theirs).abs().max().double_value(&[]);
        let scale = theirs.abs().max().double_value(&[]);
        assert!(worst <= 1e-6 * scale, "max |difference| {worst:e} against values up to {scale:e}");
    }

    #[test]
    fn other_shapes_and_training_take_libtorchs_operators() {
        let (x, weight, bias) = problem(2, 8, 14, 14);
        assert!(!fusable(&x, 8, &weight, &bias).unwrap(), "planes of 196 values");
        assert!(ours(&x, &weight, &bias).equal(&libtorch(&x, &weight, &bias)));
        let (x, weight, bias) = problem(2, 8, 16, 16);
        assert!(!fusable(&x, 4, &weight, &bias).unwrap(), "two channels per group");
        let trained = weight.detach().set_requires_grad(true);
        assert!(!fusable(&x, 8, &trained, &bias).unwrap(), "norm weights that collect gradients");
        let doubles = [&x, &weight, &bias].map(|t| t.to_kind(Kind::Double));
        assert!(!fusable(&doubles[0], 8, &doubles[1], &doubles[2]).unwrap(), "float64");
        let channels_last = x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        assert!(!fusable(&channels_last, 8, &weight, &bias).unwrap(), "channels-last");
    }

    /// On a CPU with AVX2 and FMA (the machines this was measured on), the fused kernels match
    /// libtorch and run: the DC-bench ConvNet's first block on a PGD chunk.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_fused_kernels_run_on_avx2_machines() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("no AVX2 and FMA: libtorch's operators run");
            return;
        }
        let (x, weight, bias) = problem(100, 128, 32, 32);
        let (forwards, gradients) = fused_calls();
        for _ in 0..3 {
            let _ = pass(ours, &x, &weight, &bias);
        }
        let (after_forwards, after_gradients) = fused_calls();
        assert!(after_forwards > forwards, "the fused forward kernel ran");
        assert!(after_gradients > gradients, "the fused input-gradient kernel ran");
    }
}
