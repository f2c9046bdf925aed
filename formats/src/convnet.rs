//! The DC-bench ConvNet's shape, read off a state dict's names and shapes.
//!
//! The ConvNet is `depth` blocks of Conv2d(3x3, `width` channels) -> norm -> ReLU -> 2x2 pooling
//! and one linear classifier, under PyTorch's `nn.Sequential` names: `features.N.*` with `N`
//! counting modules (conv, norm, relu, pool per block; conv, relu, pool without norm), and
//! `classifier.weight` / `.bias`. From those, [`infer`] recovers everything but the pooling kind
//! (average and max pooling hold no weights): width, depth, the norm layer (GroupNorm has only an
//! affine weight and bias, BatchNorm also running statistics), input channels, classes and the
//! image size the classifier's input implies. Anything else in the dict, or a shape that breaks
//! the pattern, is an error that names the entry.

use std::collections::BTreeMap;

use crate::torchfile::StoredTensor;

/// The normalization layer of each block, as far as the weights tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormLayer {
    /// `GroupNorm(width, width)` (DC-bench's `instancenorm`): an affine weight and bias only.
    Instance,
    /// `BatchNorm2d(width)`: also `running_mean`, `running_var` (and `num_batches_tracked`).
    Batch,
    None,
}

impl NormLayer {
    pub fn name(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::Batch => "batch",
            Self::None => "none",
        }
    }
}

/// A ConvNet's shape as its weights give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub channels: usize,
    pub width: usize,
    pub depth: usize,
    pub norm: NormLayer,
    pub classes: usize,
    /// Height and width of the input images (the last block's output size times 2^depth).
    pub image_size: usize,
}

/// Why a state dict is not a DC-bench ConvNet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a DC-bench ConvNet state dict: {0}")]
pub struct LayoutError(String);

fn fail<T>(message: impl Into<String>) -> Result<T, LayoutError> {
    Err(LayoutError(message.into()))
}

/// The layout of a ConvNet state dict (see the module docs).
pub fn infer(tensors: &[(String, StoredTensor)]) -> Result<Layout, LayoutError> {
    let mut modules: BTreeMap<usize, BTreeMap<&str, &StoredTensor>> = BTreeMap::new();
    let mut classifier: BTreeMap<&str, &StoredTensor> = BTreeMap::new();
    for (name, tensor) in tensors {
        if let Some(rest) = name.strip_prefix("features.")
            && let Some((index, field)) = rest.split_once('.')
            && let Ok(index) = index.parse::<usize>()
        {
            modules.entry(index).or_default().insert(field, tensor);
        } else if let Some(field) = name.strip_prefix("classifier.") {
            classifier.insert(field, tensor);
        } else {
            return fail(format!("unexpected entry {name:?} (expected features.N.* and classifier.*)"));
        }
    }
    let Some(first) = modules.get(&0) else { return fail("no features.0.weight (the first convolution)") };
    let conv0 = weight_of(first, 0)?;
    let [width, channels, 3, 3] = conv0.shape[..] else {
        return fail(format!("features.0.weight has shape {:?}, expected [width, channels, 3, 3]", conv0.shape));
    };
    // With a norm layer, module 1 holds its weights; without, module 1 is a ReLU.
    let norm = match modules.get(&1) {
        None => NormLayer::None,
        Some(fields) if fields.contains_key("running_mean") => NormLayer::Batch,
        Some(_) => NormLayer::Instance,
    };
    let stride = if norm == NormLayer::None { 3 } else { 4 };
    let depth = modules.keys().filter(|index| *index % stride == 0).count();
    for (&index, fields) in &modules {
        let block = index / stride;
        let expected_in = if block == 0 { channels } else { width };
        match index % stride {
            0 => check_conv(fields, index, width, expected_in)?,
            1 if norm != NormLayer::None => check_norm(fields, index, width, norm)?,
            _ => return fail(format!("features.{index} holds weights, but it is a ReLU or pooling layer")),
        }
    }
    if let Some(missing) = (0..depth).find(|block| !modules.contains_key(&(block * stride))) {
        return fail(format!("features.{} (block {missing}'s convolution) is missing", missing * stride));
    }
    if norm != NormLayer::None
        && let Some(missing) = (0..depth).find(|block| !modules.contains_key(&(block * stride + 1)))
    {
        return fail(format!("features.{} (block {missing}'s norm) is missing", missing * stride + 1));
    }
    let (classes, image_size) = check_classifier(&classifier, width, depth)?;
    Ok(Layout { channels, width, depth, norm, classes, image_size })
}

fn weight_of<'a>(fields: &BTreeMap<&str, &'a StoredTensor>, index: usize) -> Result<&'a StoredTensor, LayoutError> {
    fields.get("weight").copied().ok_or_else(|| LayoutError(format!("features.{index}.weight is missing")))
}

fn check_float(name: &str, tensor: &StoredTensor, shape: &[usize]) -> Result<(), LayoutError> {
    if !tensor.dtype.is_float() {
        return fail(format!("{name} is {:?}, expected a float tensor", tensor.dtype));
    }
    if tensor.shape != shape {
        return fail(format!("{name} has shape {:?}, expected {shape:?}", tensor.shape));
    }
    Ok(())
}

fn only_fields(fields: &BTreeMap<&str, &StoredTensor>, index: usize, allowed: &[&str]) -> Result<(), LayoutError> {
    match fields.keys().find(|field| !allowed.contains(field)) {
        Some(field) => fail(format!("unexpected entry features.{index}.{field}")),
        None => Ok(()),
    }
}

fn check_conv(
    fields: &BTreeMap<&str, &StoredTensor>,
    index: usize,
    width: usize,
    inputs: usize,
) -> Result<(), LayoutError> {
    only_fields(fields, index, &["weight", "bias"])?;
    check_float(&format!("features.{index}.weight"), weight_of(fields, index)?, &[width, inputs, 3, 3])?;
    match fields.get("bias") {
        Some(bias) => check_float(&format!("features.{index}.bias"), bias, &[width]),
        None => fail(format!("features.{index}.bias is missing")),
    }
}

fn check_norm(
    fields: &BTreeMap<&str, &StoredTensor>,
    index: usize,
    width: usize,
    norm: NormLayer,
) -> Result<(), LayoutError> {
    let names: &[&str] = match norm {
        NormLayer::Batch => &["weight", "bias", "running_mean", "running_var"],
        NormLayer::Instance | NormLayer::None => &["weight", "bias"],
    };
    let allowed: Vec<&str> =
        names.iter().copied().chain((norm == NormLayer::Batch).then_some("num_batches_tracked")).collect();
    only_fields(fields, index, &allowed)?;
    for name in names {
        match fields.get(name) {
            Some(tensor) => check_float(&format!("features.{index}.{name}"), tensor, &[width])?,
            None => return fail(format!("features.{index}.{name} is missing ({} norm)", norm.name())),
        }
    }
    Ok(())
}

/// Classes and image size from `classifier.weight` `[classes, width * s * s]`, `s` being the last
/// block's output size.
fn check_classifier(
    fields: &BTreeMap<&str, &StoredTensor>,
    width: usize,
    depth: usize,
) -> Result<(usize, usize), LayoutError> {
    if let Some(field) = fields.keys().find(|field| !["weight", "bias"].contains(field)) {
        return fail(format!("unexpected entry classifier.{field}"));
    }
    let Some(weight) = fields.get("weight") else { return fail("classifier.weight is missing") };
    let [classes, inputs] = weight.shape[..] else {
        return fail(format!("classifier.weight has shape {:?}, expected [classes, features]", weight.shape));
    };
    let side = (1..=inputs).take_while(|side| side * side * width <= inputs).last().unwrap_or(0);
    if side == 0 || side * side * width != inputs {
        return fail(format!(
            "classifier.weight takes {inputs} features, which is not {width} channels times a square feature map"
        ));
    }
    check_float("classifier.weight", weight, &[classes, inputs])?;
    match fields.get("bias") {
        Some(bias) => check_float("classifier.bias", bias, &[classes])?,
        None => return fail("classifier.bias is missing"),
    }
    Ok((classes, side << depth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torchfile::Dtype;

    fn zeros(shape: &[usize]) -> StoredTensor {
        StoredTensor { dtype: Dtype::F32, shape: shape.to_vec(), data: vec![0; 4 * shape.iter().product::<usize>()] }
    }

    /// A state dict of the given shape, in PyTorch's module numbering.
    fn convnet(
        width: usize,
        depth: usize,
        norm: NormLayer,
        classes: usize,
        image: usize,
    ) -> Vec<(String, StoredTensor)> {
        let stride = if norm == NormLayer::None { 3 } else { 4 };
        let mut dict = Vec::new();
        for block in 0..depth {
            let inputs = if block == 0 { 3 } else { width };
            dict.push((format!("features.{}.weight", block * stride), zeros(&[width, inputs, 3, 3])));
            dict.push((format!("features.{}.bias", block * stride), zeros(&[width])));
            let mut norm_fields = match norm {
                NormLayer::None => vec![],
                NormLayer::Instance => vec!["weight", "bias"],
                NormLayer::Batch => vec!["weight", "bias", "running_mean", "running_var"],
            };
            for field in norm_fields.drain(..) {
                dict.push((format!("features.{}.{field}", block * stride + 1), zeros(&[width])));
            }
        }
        let side = image >> depth;
        dict.push(("classifier.weight".into(), zeros(&[classes, width * side * side])));
        dict.push(("classifier.bias".into(), zeros(&[classes])));
        dict
    }

    #[test]
    fn every_shape_is_read_back() {
        for (width, depth, norm, classes, image) in [
            (128, 3, NormLayer::Instance, 10, 32),
            (64, 4, NormLayer::Batch, 200, 64),
            (32, 2, NormLayer::None, 100, 32),
        ] {
            let layout = infer(&convnet(width, depth, norm, classes, image)).expect("a ConvNet");
            assert_eq!(layout, Layout { channels: 3, width, depth, norm, classes, image_size: image });
        }
    }

    #[test]
    fn broken_patterns_name_the_entry() {
        let error = |dict: &[(String, StoredTensor)]| infer(dict).expect_err("not a ConvNet").to_string();
        let mut extra = convnet(8, 2, NormLayer::Instance, 10, 32);
        extra.push(("fc.weight".into(), zeros(&[1])));
        assert!(error(&extra).contains("\"fc.weight\""), "{}", error(&extra));
        let mut missing_norm = convnet(8, 2, NormLayer::Instance, 10, 32);
        missing_norm.retain(|(name, _)| !name.starts_with("features.5."));
        assert!(error(&missing_norm).contains("features.5"), "{}", error(&missing_norm));
        let mut wrong_width = convnet(8, 2, NormLayer::Instance, 10, 32);
        wrong_width[4].1 = zeros(&[9, 8, 3, 3]);
        assert!(error(&wrong_width).contains("features.4.weight has shape [9, 8, 3, 3]"), "{}", error(&wrong_width));
        let mut odd_classifier = convnet(8, 2, NormLayer::Instance, 10, 32);
        let last = odd_classifier.len() - 2;
        odd_classifier[last].1 = zeros(&[10, 8 * 8 * 8 + 1]);
        assert!(error(&odd_classifier).contains("not 8 channels times a square"), "{}", error(&odd_classifier));
        assert!(error(&[]).contains("features.0.weight"));
    }
}
