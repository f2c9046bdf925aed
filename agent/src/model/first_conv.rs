//! The ConvNet's first convolution (3 input channels, 3x3, stride 1, padding 1) run directly in
//! NCHW on the CPU, with libtorch's bits.
//!
//! libtorch runs it through oneDNN, which reorders its largest activation between layouts on
//! both passes and, computing the input gradient, pads the 3 input channels to 16. The kernels of
//! `first_conv.cpp` (compiled by the build script against libtorch's headers) compute the output
//! and the input gradient in oneDNN's accumulation order instead; the first call of each shape
//! checks them against libtorch's result and only a shape that matched bit for bit runs them from
//! then on (see the C++ file), so every attack's numbers stay those of torchattacks on the same
//! model. Other inputs (more channels, CUDA, other dtypes, other layouts, widths that are not a
//! multiple of 8) and CPUs without AVX2 and FMA run libtorch's `conv2d`.

use std::ffi::c_char;

use tch::{Device, Kind, TchError, Tensor};
use torch_sys::C_tensor;

use crate::native::owned_tensor;

unsafe extern "C" {
    fn beard_first_conv(
        input: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn beard_first_conv_direct_calls(forwards: *mut u64, gradients: *mut u64);
}

/// `conv2d(x, weight, bias)` with stride 1 and padding 1: `x` `[n, c, h, w]`, `weight`
/// `[oc, c, 3, 3]`.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor, TchError> {
    if direct(x, weight, bias)? {
        // SAFETY: the tensors are live; the function returns a new owned tensor, or null with a
        // malloc'ed message.
        unsafe {
            owned_tensor("the first convolution", |error| {
                beard_first_conv(x.as_ptr(), weight.as_ptr(), bias.as_ptr(), error)
            })
        }
    } else {
        x.f_conv2d(weight, Some(bias), [1, 1], [1, 1], [1, 1], 1)
    }
}

/// How many forward passes and input gradients the direct kernels computed in this process.
pub fn direct_calls() -> (u64, u64) {
    let (mut forwards, mut gradients) = (0, 0);
    // SAFETY: the function writes two integers through valid pointers.
    unsafe { beard_first_conv_direct_calls(&mut forwards, &mut gradients) };
    (forwards, gradients)
}

/// Whether the shapes are the ones the C++ kernels take.
fn direct(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<bool, TchError> {
    // Contiguous too: libtorch runs a channels-last input through other oneDNN kernels, whose
    // order the per-shape check (keyed by shape, not layout) must not vouch for.
    let cpu_float =
        |tensor: &Tensor| tensor.device() == Device::Cpu && tensor.kind() == Kind::Float && tensor.is_contiguous();
    if !(cpu_float(x) && cpu_float(weight) && cpu_float(bias)) {
        return Ok(false);
    }
    let (images, channels, height, width) = x.size4()?;
    let (outputs, inputs, kernel_height, kernel_width) = weight.size4()?;
    Ok(images > 0
        && height > 0
        && width > 0
        && width % 8 == 0
        && channels == 3
        && inputs == 3
        && (kernel_height, kernel_width) == (3, 3)
        && outputs > 0
        && outputs % 8 == 0
        && bias.size() == [outputs])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn libtorch(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
        x.conv2d(weight, Some(bias), [1, 1], [1, 1], [1, 1], 1)
    }

    fn ours(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
        conv2d(x, weight, bias).expect("the first convolution")
    }

    type Conv = fn(&Tensor, &Tensor, &Tensor) -> Tensor;

    /// Output, and the gradients of `sum(output * direction)` with respect to the input, the
    /// weight and the bias: those `with_grad` asks for, in that order.
    fn pass(conv: Conv, x: &Tensor, weight: &Tensor, bias: &Tensor, with_grad: [bool; 3]) -> Vec<Tensor> {
        let leaves: Vec<Tensor> =
            [x, weight, bias].iter().zip(with_grad).map(|(t, grad)| t.detach().set_requires_grad(grad)).collect();
        let output = conv(&leaves[0], &leaves[1], &leaves[2]);
        // Not random: tests on other threads draw from the same global generator.
        let direction = Tensor::arange(output.numel() as i64, (Kind::Float, Device::Cpu))
            .f_remainder(7.0)
            .and_then(|t| t.f_sub_scalar(3.0))
            .and_then(|t| t.f_view(output.size().as_slice()))
            .expect("a direction");
        let wanted: Vec<&Tensor> = leaves.iter().zip(with_grad).filter(|(_, grad)| *grad).map(|(t, _)| t).collect();
        let mut results = vec![output.detach()];
        if !wanted.is_empty() {
            results.extend(Tensor::run_backward(&[(&output * &direction).sum(Kind::Float)], &wanted, false, false));
        }
        results
    }

    fn problem(images: i64, height: i64, width: i64, outputs: i64) -> (Tensor, Tensor, Tensor) {
        let options = (Kind::Float, Device::Cpu);
        (
            Tensor::rand([images, 3, height, width], options),
            Tensor::randn([outputs, 3, 3, 3], options) * 0.2,
            Tensor::randn([outputs], options) * 0.1,
        )
    }

    /// Every result of `pass` for ours and libtorch's, twice (the first call of a shape compares
    /// the kernels, later ones run them where they matched): equal values.
    fn assert_same(shape: (i64, i64, i64, i64), with_grad: [bool; 3]) {
        let (x, weight, bias) = problem(shape.0, shape.1, shape.2, shape.3);
        for round in 0..2 {
            let theirs = pass(libtorch, &x, &weight, &bias, with_grad);
            let ours = pass(ours, &x, &weight, &bias, with_grad);
            for (index, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                assert!(a.equal(b), "result {index} of {shape:?} with gradients {with_grad:?}, round {round}");
            }
        }
    }

    #[test]
    fn outputs_and_input_gradients_equal_libtorchs() {
        tch::manual_seed(3);
        for shape in
            [(1, 32, 32, 128), (7, 32, 32, 128), (100, 32, 32, 128), (2, 64, 64, 64), (3, 5, 8, 8), (2, 9, 24, 16)]
        {
            assert_same(shape, [true, false, false]);
            let _no_grad = tch::no_grad_guard();
            assert_same(shape, [false, false, false]);
        }
    }

    #[test]
    fn training_gradients_equal_libtorchs() {
        tch::manual_seed(4);
        for shape in [(16, 32, 32, 128), (2, 16, 16, 8)] {
            assert_same(shape, [false, true, true]);
            assert_same(shape, [true, true, true]);
        }
    }

    /// Gradient matching differentiates the weight gradient again: libtorch's formulas run then.
    #[test]
    fn double_backward_equals_libtorchs() {
        tch::manual_seed(5);
        let (x, weight, bias) = problem(4, 16, 16, 16);
        let second = |conv: Conv| {
            let images = x.detach().set_requires_grad(true);
            let weight = weight.detach().set_requires_grad(true);
            let output = conv(&images, &weight, &bias);
            let objective = (&output * &output).sum(Kind::Float);
            let weight_gradient = Tensor::run_backward(&[objective], &[&weight], true, true).remove(0);
            Tensor::run_backward(&[weight_gradient.square().sum(Kind::Float)], &[&images], false, false).remove(0)
        };
        let (ours, theirs) = (second(ours), second(libtorch));
        assert!(ours.abs().sum(Kind::Float).double_value(&[]) > 0.0, "the second derivative reaches the images");
        assert!(ours.equal(&theirs));
    }

    #[test]
    fn other_shapes_and_kinds_take_libtorchs_convolution() {
        let (x, weight, bias) = problem(2, 28, 28, 32);
        assert!(!direct(&x, &weight, &bias).unwrap(), "width 28");
        assert!(ours(&x, &weight, &bias).equal(&libtorch(&x, &weight, &bias)));
        let (x, weight, bias) = problem(2, 32, 32, 12);
        assert!(!direct(&x, &weight, &bias).unwrap(), "12 output channels");
        let (x, weight, bias) = problem(2, 32, 32, 16);
        let doubles = [&x, &weight, &bias].map(|t| t.to_kind(Kind::Double));
        assert!(!direct(&doubles[0], &doubles[1], &doubles[2]).unwrap(), "float64");
        let channels_last = x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        assert!(!direct(&channels_last, &weight, &bias).unwrap(), "channels-last");
        let wide = Tensor::rand([2, 8, 32, 32], (Kind::Float, Device::Cpu));
        let wide_weight = Tensor::randn([16, 8, 3, 3], (Kind::Float, Device::Cpu));
        assert!(!direct(&wide, &wide_weight, &bias).unwrap(), "8 input channels");
    }

    /// On a CPU with oneDNN's AVX-512 kernels (the machines this was measured on), the direct
    /// kernels match libtorch and run: the ConvNet's first layer on a PGD chunk.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_direct_kernels_run_on_avx512_machines() {
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")) {
            eprintln!("no AVX-512: the direct kernels' order is checked against oneDNN's AVX2 kernels at run time");
            return;
        }
        let (x, weight, bias) = problem(100, 32, 32, 128);
        let (forwards, gradients) = direct_calls();
        for _ in 0..3 {
            let _ = pass(ours, &x, &weight, &bias, [true, false, false]);
        }
        let (after_forwards, after_gradients) = direct_calls();
        assert!(after_forwards > forwards, "the direct forward kernel ran");
        assert!(after_gradients > gradients, "the direct input-gradient kernel ran");
    }
}
