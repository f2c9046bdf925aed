//! The six DSA transforms as tensor ops on a batch `[n, c, h, w]`, with per-image parameters
//! `[n, k]` on the batch's device laid out as [`Transform`] describes. All ops are
//! differentiable in the images and stay on their device.
//!
//! Semantics follow DSA's `DiffAugment` (VICO-UoE/DatasetCondensation, `utils.py`): crop
//! reads a one-pixel zero border for every pixel shifted out of the image; cutout zeroes the
//! square around its center, clipped to the image; scale and rotate resample with
//! `affine_grid` / `grid_sample` (bilinear, zero padding, `align_corners = false`, PyTorch's
//! defaults there); flip mirrors the width axis; color shifts brightness, then scales each
//! pixel's deviation from its channel mean (saturation), then each image's deviation from its
//! mean (contrast).

use tch::{Kind, TchError, Tensor};

use super::draw::{Transform, cutout_size};

const BILINEAR: i64 = 0;
const ZEROS: i64 = 0;

/// `images` transformed by `transform` with the parameters `params` (`[n, k]`, one row per image).
pub fn apply(transform: Transform, params: &Tensor, images: &Tensor) -> Result<Tensor, TchError> {
    let (n, _, height, width) = images.size4()?;
    let columns = transform.columns() as i64;
    if params.size() != [n, columns] {
        return Err(TchError::Shape(format!(
            "{transform:?} of {n} images needs [{n}, {columns}] parameters, got {:?}",
            params.size()
        )));
    }
    let column = |index: i64| params.f_select(1, index)?.f_reshape([n, 1, 1, 1]);
    match transform {
        Transform::Color => color(images, &column(0)?, &column(1)?, &column(2)?),
        Transform::Crop => crop(images, params),
        Transform::Cutout => cutout(images, params, height, width),
        Transform::Flip => images.f_flip([3])?.f_where_self(&column(0)?.f_gt(0.5)?, images),
        Transform::Scale | Transform::Rotate => {
            let grid = Tensor::f_affine_grid_generator(&params.f_reshape([n, 2, 3])?, images.size(), false)?;
            images.f_grid_sampler(&grid, BILINEAR, ZEROS, false)
        }
    }
}

fn color(images: &Tensor, offset: &Tensor, saturation: &Tensor, contrast: &Tensor) -> Result<Tensor, TchError> {
    let scaled_about = |x: &Tensor, mean: Tensor, factor: &Tensor| x.f_sub(&mean)?.f_mul(factor)?.f_add(&mean);
    let x = images.f_add(offset)?;
    let x = scaled_about(&x, x.f_mean_dim([1].as_slice(), true, None::<Kind>)?, saturation)?;
    scaled_about(&x, x.f_mean_dim([1, 2, 3].as_slice(), true, None::<Kind>)?, contrast)
}

/// Output pixel (i, j) is input pixel (i + row shift, j + column shift), or zero outside.
fn crop(images: &Tensor, shifts: &Tensor) -> Result<Tensor, TchError> {
    let (n, channels, height, width) = images.size4()?;
    let shifts = shifts.f_to_kind(Kind::Int64)?;
    // Source index of each output row (column) in the image padded by one zero pixel.
    let source = |axis: i64, size: i64| -> Result<Tensor, TchError> {
        let positions = Tensor::f_arange(size, (Kind::Int64, images.device()))?.f_unsqueeze(0)?;
        positions.f_add(&shifts.f_select(1, axis)?.f_unsqueeze(1)?)?.f_add_scalar(1)?.f_clamp(0, size + 1)
    };
    let padded = images.f_constant_pad_nd([1, 1, 1, 1])?;
    let rows = source(0, height)?.f_reshape([n, 1, height, 1])?.f_expand([n, channels, height, width + 2], false)?;
    let columns = source(1, width)?.f_reshape([n, 1, 1, width])?.f_expand([n, channels, height, width], false)?;
    padded.f_gather(2, &rows, false)?.f_gather(3, &columns, false)
}

/// Zeroes rows `center - size/2 .. center - size/2 + size` (and the same for columns), clipped
/// to the image.
fn cutout(images: &Tensor, centers: &Tensor, height: i64, width: i64) -> Result<Tensor, TchError> {
    let n = centers.size()[0];
    let inside = |axis: i64, extent: i64| -> Result<Tensor, TchError> {
        let size = cutout_size(extent);
        let first = centers.f_select(1, axis)?.f_unsqueeze(1)?.f_sub_scalar((size / 2) as f64)?;
        let positions = Tensor::f_arange(extent, (Kind::Float, images.device()))?.f_unsqueeze(0)?;
        let after_first = positions.f_ge_tensor(&first)?;
        after_first.f_logical_and(&positions.f_lt_tensor(&first.f_add_scalar(size as f64)?)?)
    };
    let rows = inside(0, height)?.f_reshape([n, 1, height, 1])?;
    let columns = inside(1, width)?.f_reshape([n, 1, 1, width])?;
    let hole = rows.f_logical_and(&columns)?;
    images.f_masked_fill(&hole, 0.0)
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;

    /// Image `[1, 1, h, w]` whose pixel (i, j) is `1 + i * w + j`.
    fn ramp(height: i64, width: i64) -> Tensor {
        Tensor::arange(height * width, (Kind::Float, Device::Cpu)).reshape([1, 1, height, width]) + 1.0
    }

    fn with(transform: Transform, params: &[f32], images: &Tensor) -> Tensor {
        let rows = images.size()[0];
        apply(transform, &Tensor::from_slice(params).reshape([rows, -1]), images).expect("applies")
    }

    fn values(tensor: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(tensor.flatten(0, -1)).expect("floats")
    }

    #[test]
    fn crop_translates_with_zero_fill() {
        let image = ramp(3, 4);
        let shifted = with(Transform::Crop, &[1.0, -2.0], &image);
        // Row i reads row i + 1; column j reads column j - 2.
        assert_eq!(values(&shifted), [0.0, 0.0, 5.0, 6.0, 0.0, 0.0, 9.0, 10.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(values(&with(Transform::Crop, &[0.0, 0.0], &image)), values(&image));
    }

    #[test]
    fn cutout_zeroes_a_clipped_square() {
        let image = Tensor::ones([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        // Size 4: center 0 zeroes rows -2..2 (clipped to 0..2), center 5 zeroes columns 3..7.
        let cut = with(Transform::Cutout, &[0.0, 5.0, 8.0, 8.0], &image);
        let first = cut.get(0).get(1);
        let zero_at = |i: i64, j: i64| first.double_value(&[i, j]) == 0.0;
        assert!(zero_at(0, 3) && zero_at(1, 6) && !zero_at(2, 3) && !zero_at(0, 2) && !zero_at(0, 7));
        assert_eq!(first.sum(Kind::Float).double_value(&[]), 64.0 - 8.0);
        assert_eq!(cut.get(1).sum(Kind::Float).double_value(&[]), 3.0 * (64.0 - 4.0));
    }

    #[test]
    fn flip_mirrors_the_chosen_images_only() {
        let images = Tensor::cat(&[ramp(2, 3), ramp(2, 3)], 0);
        let flipped = with(Transform::Flip, &[1.0, 0.0], &images);
        assert_eq!(values(&flipped.get(0)), [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        assert_eq!(values(&flipped.get(1)), values(&images.get(1)));
    }

    #[test]
    fn identity_parameters_change_nothing() {
        let images = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        for (transform, params) in [
            (Transform::Scale, [identity, identity].concat()),
            (Transform::Rotate, [identity, identity].concat()),
            (Transform::Color, vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0]),
        ] {
            let out = with(transform, &params, &images);
            let error = (out - &images).abs().max().double_value(&[]);
            assert!(error < 1e-5, "{transform:?}: {error}");
        }
    }

    #[test]
    fn rotation_by_a_quarter_turn_and_scaling_resample_the_grid() {
        let image = ramp(4, 4);
        let quarter = with(Transform::Rotate, &[0.0, -1.0, 0.0, 1.0, 0.0, 0.0], &image);
        // Output (x, y) samples input (-y, x): the transpose of the column-mirrored image.
        assert!(quarter.allclose(&image.flip([3]).transpose(2, 3), 1e-5, 1e-5, false), "{quarter}");
        // Sampling at twice the distance from the center leaves the outer ring empty of input.
        let zoomed_out = with(Transform::Scale, &[2.0, 0.0, 0.0, 0.0, 2.0, 0.0], &image);
        assert!(values(&zoomed_out).iter().sum::<f32>() < values(&image).iter().sum::<f32>() / 2.0);
    }

    #[test]
    fn color_shifts_and_scales_about_the_means() {
        let images = Tensor::randn([1, 3, 4, 4], (Kind::Float, Device::Cpu));
        let bright = with(Transform::Color, &[0.25, 1.0, 1.0], &images);
        assert!((bright - &images - 0.25).abs().max().double_value(&[]) < 1e-5);
        let gray = with(Transform::Color, &[0.0, 0.0, 1.0], &images);
        let channel_spread = gray.std_dim([1].as_slice(), true, false).max().double_value(&[]);
        assert!(channel_spread < 1e-5, "saturation 0 leaves gray pixels: {channel_spread}");
        let flat = with(Transform::Color, &[0.0, 1.0, 0.0], &images);
        let mean = images.mean(Kind::Float).double_value(&[]);
        assert!((flat - mean).abs().max().double_value(&[]) < 1e-5, "contrast 0 leaves the mean");
    }

    #[test]
    fn mismatched_parameters_are_an_error() {
        let error =
            apply(Transform::Flip, &Tensor::from_slice(&[1f32]).reshape([1, 1]), &ramp(2, 2).repeat([2, 1, 1, 1]));
        assert!(error.is_err());
    }
}
