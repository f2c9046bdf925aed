//! IDM's and BACON's partition-and-expansion images (`number_sign_augment` and `downscale` in
//! IDM's `dc_utils.py`), as they store them and BEARD's `train_model.py` decodes them: an image is a 2x2 mosaic of four half-size images. [`encode`] builds one
//! from four full-size images, each downscaled by half (bilinear); [`decode`] expands a batch of
//! mosaics into four times as many full-size images, each quadrant upsampled by two (bilinear,
//! `align_corners=False` as `F.upsample` defaults to), in the reference's order: every image's
//! top-left quadrant, then the bottom-left ones, the top-right ones and the bottom-right ones.

use tch::{TchError, Tensor};

/// The quadrants in decoding order, as (row half, column half): TL, BL, TR, BR.
const QUADRANTS: [(i64, i64); 4] = [(0, 0), (1, 0), (0, 1), (1, 1)];

/// Mosaics `[n, c, h, w]` of four image batches `[n, c, h, w]`, given in decoding order (TL, BL,
/// TR, BR), each downscaled into its quadrant.
pub fn encode(quadrants: &[Tensor; 4]) -> Result<Tensor, TchError> {
    let (_, _, height, width) = quadrants[0].size4()?;
    let half = |images: &Tensor| images.f_upsample_bilinear2d([height / 2, width / 2], false, None, None);
    let [top_left, bottom_left, top_right, bottom_right] = quadrants;
    let top = Tensor::f_cat(&[half(top_left)?, half(top_right)?], 3)?;
    let bottom = Tensor::f_cat(&[half(bottom_left)?, half(bottom_right)?], 3)?;
    Tensor::f_cat(&[top, bottom], 2)
}

/// The `4n` full-size images `[4n, c, h, w]` of mosaics `[n, c, h, w]`: all top-left quadrants
/// first, then bottom-left, top-right and bottom-right, each upsampled back to `h` x `w`.
pub fn decode(mosaics: &Tensor) -> Result<Tensor, TchError> {
    let (_, _, height, width) = mosaics.size4()?;
    let (half_height, half_width) = (height / 2, width / 2);
    let expanded = QUADRANTS
        .iter()
        .map(|&(row, column)| {
            mosaics
                .f_narrow(2, row * half_height, half_height)?
                .f_narrow(3, column * half_width, half_width)?
                .f_upsample_bilinear2d([height, width], false, None, None)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Tensor::f_cat(&expanded, 0)
}

/// The labels of [`decode`]'s images: `labels` (`[n]` classes or `[n, classes]` soft labels)
/// four times over.
pub fn decode_labels(labels: &Tensor) -> Result<Tensor, TchError> {
    let mut repeats = vec![1; labels.dim()];
    repeats[0] = 4;
    labels.f_repeat(&repeats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// A `[n, 1, 4, 4]` batch whose mosaic quadrants hold constants: image `i`'s quadrant `q`
    /// (TL, BL, TR, BR) is `10 i + q`.
    fn labelled_mosaics(count: i64) -> Tensor {
        let mosaics = Tensor::zeros([count, 1, 4, 4], (Kind::Float, Device::Cpu));
        for image in 0..count {
            for (quadrant, &(row, column)) in QUADRANTS.iter().enumerate() {
                let _ = mosaics
                    .get(image)
                    .narrow(1, row * 2, 2)
                    .narrow(2, column * 2, 2)
                    .fill_((10 * image + quadrant as i64) as f64);
            }
        }
        mosaics
    }

    #[test]
    fn decoding_keeps_the_quadrant_order_and_the_labels_order() {
        let decoded = decode(&labelled_mosaics(3)).expect("decodes");
        assert_eq!(decoded.size(), [12, 1, 4, 4]);
        // Constant quadrants upsample to constant images: TL of images 0-2, then BL, TR, BR.
        let values: Vec<f64> = (0..12).map(|i| decoded.get(i).mean(Kind::Float).double_value(&[])).collect();
        let expected: Vec<f64> = (0..4).flat_map(|q| (0..3).map(move |i| f64::from(10 * i + q))).collect();
        for (value, expected) in values.iter().zip(&expected) {
            assert!((value - expected).abs() < 1e-5, "{values:?} vs {expected:?}");
        }
        let labels = decode_labels(&Tensor::from_slice(&[7i64, 8, 9])).expect("labels");
        assert_eq!(Vec::<i64>::try_from(labels).expect("ints"), [7, 8, 9, 7, 8, 9, 7, 8, 9, 7, 8, 9]);
    }

    #[test]
    fn encoding_puts_each_image_in_its_quadrant_and_decoding_gives_it_back_blurred() {
        let constant = |value: f64| Tensor::full([2, 1, 4, 4], value, (Kind::Float, Device::Cpu));
        let mosaics = encode(&[constant(1.0), constant(2.0), constant(3.0), constant(4.0)]).expect("encodes");
        let decoded = decode(&mosaics).expect("decodes");
        for (quadrant, value) in [1.0, 2.0, 3.0, 4.0].iter().enumerate() {
            let images = decoded.narrow(0, 2 * quadrant as i64, 2);
            assert!(images.allclose(&constant(*value), 1e-6, 1e-6, false), "quadrant {quadrant}");
        }
    }
}
