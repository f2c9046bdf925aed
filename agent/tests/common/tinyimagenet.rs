//! Small fake `tiny-imagenet-200` trees written by the tests in the official layout: JPEGs
//! encoded with the `image` crate at quality 100 (some grayscale), and the pixels each should
//! load as.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, GrayImage, Rgb, RgbImage};

/// Largest difference between a pixel written and the one decoded (quality-100 JPEG).
pub const JPEG_TOLERANCE: u8 = 3;

/// One image as the loader should return it: its label and `[3, 64, 64]` pixel bytes.
#[derive(Clone, Debug)]
pub struct Image {
    pub label: i64,
    pub file: String,
    pub pixels: Vec<u8>,
}

/// A tree under `root`, and what its splits hold.
pub struct Tree {
    pub root: PathBuf,
    sorted: Vec<String>,
    train: Vec<Image>,
    pub val: Vec<Image>,
}

impl Tree {
    /// A tree whose `wnids.txt` lists `wnids` in this order.
    pub fn new(root: &Path, wnids: &[&str]) -> Self {
        std::fs::create_dir_all(root.join("val/images")).expect("mkdir");
        std::fs::write(root.join("wnids.txt"), wnids.join("\n") + "\n").expect("write wnids");
        std::fs::write(root.join("val/val_annotations.txt"), "").expect("write annotations");
        let mut sorted: Vec<String> = wnids.iter().map(|w| (*w).to_owned()).collect();
        sorted.sort();
        Self { root: root.into(), sorted, train: Vec::new(), val: Vec::new() }
    }

    /// The label of `wnid`: its index among the sorted wnids.
    pub fn label(&self, wnid: &str) -> i64 {
        self.sorted.iter().position(|w| w == wnid).expect("a listed wnid") as i64
    }

    /// The train split as the loader orders it: by label, then file name.
    pub fn train(&self) -> Vec<Image> {
        let mut train = self.train.clone();
        train.sort_by(|a, b| (a.label, &a.file).cmp(&(b.label, &b.file)));
        train
    }

    /// Add a training image of class `wnid` (grayscale when `gray`).
    pub fn add_train(&mut self, wnid: &str, gray: bool) {
        let directory = self.root.join("train").join(wnid).join("images");
        std::fs::create_dir_all(&directory).expect("mkdir");
        std::fs::write(self.root.join("train").join(wnid).join(format!("{wnid}_boxes.txt")), "ignored\n")
            .expect("boxes");
        let file = format!("{wnid}_{}.JPEG", self.train.iter().filter(|i| i.label == self.label(wnid)).count());
        let pixels = write_jpeg(&directory.join(&file), picture(self.train.len() + self.val.len(), gray));
        self.train.push(Image { label: self.label(wnid), file, pixels });
    }

    /// Add a validation image of class `wnid` (grayscale when `gray`) and its annotation line.
    pub fn add_val(&mut self, wnid: &str, gray: bool) {
        let file = format!("val_{}.JPEG", self.val.len());
        let pixels =
            write_jpeg(&self.root.join("val/images").join(&file), picture(self.train.len() + self.val.len(), gray));
        self.annotate(&format!("{file}\t{wnid}\t0\t0\t63\t63"));
        self.val.push(Image { label: self.label(wnid), file, pixels });
    }

    /// Append a raw line to `val/val_annotations.txt`.
    pub fn annotate(&self, line: &str) {
        let path = self.root.join("val/val_annotations.txt");
        let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open annotations");
        writeln!(file, "{line}").expect("append");
    }
}

/// The standard small tree: three classes listed out of order, two training images per class
/// and four validation images, one grayscale image in each split.
pub fn small(root: &Path) -> Tree {
    let mut tree = Tree::new(root, &["n03000003", "n01000001", "n02000002"]);
    for (wnid, gray) in [("n02000002", false), ("n01000001", false), ("n03000003", false)] {
        tree.add_train(wnid, gray);
    }
    for (wnid, gray) in [("n03000003", false), ("n02000002", true), ("n01000001", false)] {
        tree.add_train(wnid, gray);
    }
    for (wnid, gray) in [("n03000003", false), ("n01000001", false), ("n02000002", true), ("n03000003", false)] {
        tree.add_val(wnid, gray);
    }
    tree
}

/// A smooth 64x64 picture, different for every `index`: red grows left to right, green top to
/// bottom, blue is set by the index; grayscale ones are a diagonal ramp.
pub fn picture(index: usize, gray: bool) -> DynamicImage {
    if gray {
        let shift = (index % 4) as u32;
        DynamicImage::ImageLuma8(GrayImage::from_fn(64, 64, |x, y| image::Luma([(2 * (x + y) + shift) as u8])))
    } else {
        let blue = (30 + 37 * index % 200) as u8;
        DynamicImage::ImageRgb8(RgbImage::from_fn(64, 64, |x, y| Rgb([(4 * x) as u8, (4 * y) as u8, blue])))
    }
}

/// Encode `image` as a quality-100 JPEG at `path`; its pixels as `[3, h, w]` bytes.
pub fn write_jpeg(path: &Path, image: DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 100).encode_image(&image).expect("encode");
    std::fs::write(path, bytes).expect("write jpeg");
    planes(&image.to_rgb8())
}

/// `[3, h, w]` bytes of an RGB image.
pub fn planes(image: &RgbImage) -> Vec<u8> {
    (0..3).flat_map(|channel| image.pixels().map(move |pixel| pixel.0[channel])).collect()
}
