//! A block's ReLU and 2x2 average pooling as one operation.
//!
//! On the CPU, for float32 activations of even height and width, it runs the fused kernel of
//! `relu_pool.cpp` (compiled by the build script against libtorch's headers): one pass forward
//! and one backward instead of five, bit-identical to libtorch's `relu` + `avg_pool2d` and their
//! gradients, so every attack's numbers stay those of torchattacks on the same model. Anywhere
//! else (CUDA, other dtypes, odd sizes) it runs libtorch's two operators.

use std::ffi::c_char;

use tch::{Device, Kind, TchError, Tensor};
use torch_sys::C_tensor;

use crate::native::owned_tensor;

unsafe extern "C" {
    fn beard_relu_avg_pool(input: *const C_tensor, error: *mut *mut c_char) -> *mut C_tensor;
}

/// `avg_pool2d(relu(x), 2, 2)` of `x` `[n, c, h, w]`.
pub fn relu_avg_pool(x: &Tensor) -> Result<Tensor, TchError> {
    if fusable(x)? { fused(x) } else { x.f_relu()?.f_avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>) }
}

fn fusable(x: &Tensor) -> Result<bool, TchError> {
    if x.device() != Device::Cpu || x.kind() != Kind::Float {
        return Ok(false);
    }
    let (_, _, height, width) = x.size4()?;
    Ok(height % 2 == 0 && width % 2 == 0)
}

fn fused(x: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: `x` is a live tensor; the function returns a new owned tensor, or null with a
    // malloc'ed message.
    unsafe { owned_tensor("the fused ReLU and pooling", |error| beard_relu_avg_pool(x.as_ptr(), error)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(x: &Tensor) -> Tensor {
        x.relu().avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>)
    }

    /// Values with ties at 0, signed zeros, NaN and infinities among ordinary ones.
    fn awkward(shape: [i64; 4]) -> Tensor {
        let x = Tensor::randn(shape, (Kind::Float, Device::Cpu));
        let flat = x.view([-1]);
        for (index, value) in [(0, 0.0), (1, -0.0), (5, f64::NAN), (9, f64::INFINITY), (11, f64::NEG_INFINITY)] {
            let _ = flat.get(index).fill_(value);
        }
        x
    }

    fn bits(x: &Tensor) -> Vec<u32> {
        Vec::<f32>::try_from(x.flatten(0, -1)).expect("float32").into_iter().map(f32::to_bits).collect()
    }

    /// The input gradient of `sum(out * weight)`, with its graph when `create_graph`.
    fn input_gradient(op: fn(&Tensor) -> Tensor, x: &Tensor, weight: &Tensor, create_graph: bool) -> Tensor {
        let input = x.detach().set_requires_grad(true);
        let objective = (op(&input) * weight).sum(Kind::Float);
        let mut gradients = Tensor::run_backward(&[objective], &[&input], create_graph, create_graph);
        gradients.remove(0)
    }

    fn ours(x: &Tensor) -> Tensor {
        relu_avg_pool(x).expect("fused")
    }

    #[test]
    fn forward_and_backward_are_bit_identical_to_libtorch() {
        tch::manual_seed(7);
        for shape in [[3, 5, 8, 8], [2, 128, 32, 32], [1, 1, 2, 6]] {
            let x = awkward(shape);
            assert!(fusable(&x).unwrap());
            assert_eq!(bits(&ours(&x)), bits(&native(&x)), "forward of {shape:?}");
            let weight = Tensor::randn([shape[0], shape[1], shape[2] / 2, shape[3] / 2], (Kind::Float, Device::Cpu));
            assert_eq!(
                bits(&input_gradient(ours, &x, &weight, false)),
                bits(&input_gradient(native, &x, &weight, false)),
                "backward of {shape:?}"
            );
        }
    }

    #[test]
    fn double_backward_matches_libtorch() {
        tch::manual_seed(8);
        let x = Tensor::randn([2, 4, 6, 6], (Kind::Float, Device::Cpu));
        let direction = Tensor::randn([2, 4, 6, 6], (Kind::Float, Device::Cpu));
        let base = Tensor::randn([2, 4, 3, 3], (Kind::Float, Device::Cpu));
        let second = |op: fn(&Tensor) -> Tensor| {
            let weight = base.detach().set_requires_grad(true);
            let gradient = input_gradient(op, &x, &weight, true);
            Tensor::run_backward(&[(gradient * &direction).sum(Kind::Float)], &[&weight], false, false).remove(0)
        };
        let (ours, theirs) = (second(ours), second(native));
        assert!(ours.abs().sum(Kind::Float).double_value(&[]) > 0.0, "the second derivative reaches the weights");
        assert_eq!(bits(&ours), bits(&theirs));
    }

    #[test]
    fn other_shapes_and_kinds_take_libtorchs_operators() {
        let odd = Tensor::randn([1, 2, 5, 5], (Kind::Float, Device::Cpu));
        assert!(!fusable(&odd).unwrap());
        assert_eq!(bits(&ours(&odd)), bits(&native(&odd)));
        assert!(!fusable(&odd.to_kind(Kind::Double)).unwrap());
    }
}
