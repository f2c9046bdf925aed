//! `agent datasets fetch` without the internet: archives built by the test in the official
//! layouts are verified and unpacked where the loaders read them, downloads go to a server on
//! loopback, and the real binary fails cleanly, naming the address and the cause, when the
//! archive cannot be had or is not the published one.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use beard_agent::data::fetch::{self, ArchiveKind, FetchError, Progress, Source};
use beard_agent::data::{Dataset, Part};
use beard_proto::v1::DatasetRef;
use md5::{Digest, Md5};
use tch::Device;

/// CIFAR-10 binary records: label `first + i` for record `i`, pixels filled with the label.
fn cifar_records(first: u8, count: u8) -> Vec<u8> {
    (first..first + count).flat_map(|label| std::iter::once(label).chain(std::iter::repeat_n(label, 3072))).collect()
}

/// A `.tar.gz` holding `files` (path in the archive, bytes).
fn tar_gz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, bytes.as_slice()).expect("append");
    }
    builder.into_inner().expect("tar").finish().expect("gzip")
}

/// The CIFAR-10 binary archive's layout with two records per file; without `test_batch.bin`
/// when `complete` is false.
fn cifar10_archive(complete: bool) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = (1..=5)
        .map(|batch| (format!("cifar-10-batches-bin/data_batch_{batch}.bin"), cifar_records(batch, 2)))
        .collect();
    files.push(("cifar-10-batches-bin/batches.meta.txt".into(), b"airplane\n".to_vec()));
    if complete {
        files.push(("cifar-10-batches-bin/test_batch.bin".into(), cifar_records(7, 3)));
    }
    tar_gz(&files)
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

fn cifar10_source(archive: &[u8]) -> Source {
    Source { md5: md5_hex(archive), ..fetch::official("cifar10").expect("cifar10") }
}

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).expect("list").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
    names.sort();
    names
}

fn ignore(_: Progress) {}

#[test]
fn official_sources_carry_the_published_addresses_and_checksums() {
    let cifar10 = fetch::official("cifar10").expect("cifar10");
    assert_eq!(cifar10.url, "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");
    assert_eq!(cifar10.md5, "c32a1d4ab5d03f1284b67883e8d87530");
    assert_eq!((cifar10.kind, cifar10.root), (ArchiveKind::TarGz, "cifar-10-batches-bin"));
    let cifar100 = fetch::official("cifar100").expect("cifar100");
    assert_eq!(cifar100.md5, "03b5dce01913d631647c71ecec9e9cb8");
    assert_eq!((cifar100.root, cifar100.files.as_slice()), ("cifar-100-binary", ["train.bin", "test.bin"].as_slice()));
    let tiny = fetch::official("tinyimagenet").expect("tinyimagenet");
    assert_eq!(tiny.url, "http://cs231n.stanford.edu/tiny-imagenet-200.zip");
    assert_eq!(tiny.md5, "90528d7ca1a48142e341f4ef8d21d0de");
    assert_eq!((tiny.kind, tiny.root), (ArchiveKind::Zip, "tiny-imagenet-200"));
    let error = fetch::official("synthetic").expect_err("nothing to fetch").to_string();
    assert!(error.contains("cifar10, cifar100 and tinyimagenet"), "{error}");
}

#[test]
fn a_verified_cifar_archive_unpacks_where_the_loader_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("cifar-10-binary.tar.gz");
    let bytes = cifar10_archive(true);
    std::fs::write(&archive, &bytes).expect("write");
    let to = dir.path().join("data");
    let mut events = Vec::new();
    let root = fetch::install(&archive, &cifar10_source(&bytes), &to, |p| events.push(p)).expect("installs");
    assert_eq!(root, to.join("cifar-10-batches-bin"));
    assert_eq!(events, [Progress::Verifying, Progress::Extracting]);
    assert_eq!(listing(&to), ["cifar-10-batches-bin"], "no temporary file or directory is left");
    let reference = DatasetRef { name: "cifar10".into(), root: root.display().to_string() };
    let dataset = Dataset::load(&reference, Device::Cpu).expect("loads");
    assert_eq!(dataset.test.labels_host(), [7, 8, 9]);
    assert_eq!(dataset.train().expect("train").labels_host(), [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);

    let again = fetch::install(&archive, &cifar10_source(&bytes), &to, ignore).expect_err("exists");
    assert!(matches!(again, FetchError::Exists(ref path) if *path == root), "{again}");
    assert!(again.to_string().contains("remove it to fetch the dataset again"), "{again}");
}

#[test]
fn a_wrong_checksum_or_an_incomplete_archive_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let to = dir.path().join("data");
    std::fs::create_dir(&to).expect("mkdir");
    let archive = dir.path().join("cifar-10-binary.tar.gz");
    let bytes = cifar10_archive(true);
    std::fs::write(&archive, &bytes).expect("write");
    let official = fetch::official("cifar10").expect("cifar10");
    let error = fetch::install(&archive, &official, &to, ignore).expect_err("not the published archive").to_string();
    assert!(
        error.contains(&format!("MD5 {}, expected the published c32a1d4ab5d03f1284b67883e8d87530", md5_hex(&bytes))),
        "{error}"
    );
    assert!(error.contains("cifar-10-binary.tar.gz"), "{error}");

    let incomplete = cifar10_archive(false);
    std::fs::write(&archive, &incomplete).expect("write");
    let error = fetch::install(&archive, &cifar10_source(&incomplete), &to, ignore).expect_err("incomplete");
    assert!(error.to_string().contains("holds no cifar-10-batches-bin/test_batch.bin"), "{error}");

    std::fs::write(&archive, b"\x1f\x8b not really gzip").expect("write");
    let error = fetch::install(&archive, &cifar10_source(b"\x1f\x8b not really gzip"), &to, ignore).expect_err("bad");
    assert!(error.to_string().contains("cannot unpack the archive"), "{error}");
    assert!(listing(&to).is_empty(), "{:?}", listing(&to));
}

/// Zip the directory `root` (entries named from its parent, as the official archive does).
fn zip_tree(root: &Path, out: &Path) {
    fn add(zip: &mut zip::ZipWriter<std::fs::File>, base: &Path, dir: &Path) {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(dir).expect("list").map(|e| e.expect("entry").path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                add(zip, base, &path);
            } else {
                let name = path.strip_prefix(base).expect("inside").to_string_lossy().into_owned();
                let options = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
                zip.start_file(name, options).expect("start");
                zip.write_all(&std::fs::read(&path).expect("read")).expect("write");
            }
        }
    }
    let mut zip = zip::ZipWriter::new(std::fs::File::create(out).expect("create"));
    add(&mut zip, root.parent().expect("parent"), root);
    zip.finish().expect("finish");
}

#[test]
fn a_verified_tinyimagenet_zip_unpacks_and_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = common::tinyimagenet::small(&dir.path().join("made/tiny-imagenet-200"));
    let archive = dir.path().join("tiny-imagenet-200.zip");
    zip_tree(&tree.root, &archive);
    let source = Source {
        md5: md5_hex(&std::fs::read(&archive).expect("read")),
        ..fetch::official("tinyimagenet").expect("tiny")
    };
    let root = fetch::install(&archive, &source, &dir.path().join("data"), ignore).expect("installs");
    assert_eq!(root, dir.path().join("data/tiny-imagenet-200"));
    let reference = DatasetRef { name: "tinyimagenet".into(), root: root.display().to_string() };
    let dataset = Dataset::load(&reference, Device::Cpu).expect("loads");
    assert_eq!(dataset.test.labels_host(), [2, 0, 1, 2]);
    assert_eq!(dataset.train().expect("train").len(), 6);
    assert_eq!(beard_agent::data::tinyimagenet::load(&root, Part::Test).expect("cached").labels, [2, 0, 1, 2]);
}

/// Serve `body` once over HTTP on loopback; the URL.
fn serve_once(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).expect("read") == 1 {
            request.push(byte[0]);
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body)).expect("respond");
    });
    format!("http://{address}/cifar-10-binary.tar.gz")
}

#[test]
fn a_download_from_loopback_is_verified_and_unpacked_with_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = cifar10_archive(true);
    let source = Source { url: serve_once(bytes.clone()), ..cifar10_source(&bytes) };
    let mut events = Vec::new();
    let root = fetch::fetch(&source, dir.path(), |progress| events.push(progress)).expect("fetches");
    assert_eq!(root, dir.path().join("cifar-10-batches-bin"));
    let total = bytes.len() as u64;
    assert_eq!(events[0], Progress::Downloading { url: source.url.clone(), total: Some(total) });
    let received: Vec<u64> =
        events.iter().filter_map(|e| if let Progress::Received(n) = e { Some(*n) } else { None }).collect();
    assert!(received.is_sorted() && received.last() == Some(&total), "{events:?}");
    assert_eq!(events[events.len() - 2..], [Progress::Verifying, Progress::Extracting]);
    assert_eq!(listing(dir.path()), ["cifar-10-batches-bin"]);
}

/// Run `agent datasets fetch ARGS`; (success, stdout, stderr, seconds).
fn agent_fetch(args: &[&str]) -> (bool, String, String, f64) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["datasets", "fetch"])
        .args(args)
        .output()
        .expect("the agent binary runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr), started.elapsed().as_secs_f64())
}

#[test]
fn the_cli_fails_cleanly_when_the_archive_cannot_be_had_or_is_not_the_published_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let to = dir.path().join("data");
    let to_arg = to.display().to_string();
    // Nothing listens on a port just released: the connection is refused at once.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let url = format!("http://127.0.0.1:{port}/cifar-10-binary.tar.gz");
    let (ok, _, stderr, seconds) = agent_fetch(&["cifar10", "--to", &to_arg, "--url", &url]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains(&format!("cannot download {url}: ")) && stderr.contains("refused"), "{stderr}");
    assert!(stderr.contains("--archive FILE"), "{stderr}");
    assert!(seconds < 30.0, "took {seconds} s");
    assert!(listing(&to).is_empty(), "{:?}", listing(&to));

    // A server that answers with something else than the published archive.
    let served = cifar10_archive(true);
    let url = serve_once(served.clone());
    let (ok, _, stderr, _) = agent_fetch(&["cifar10", "--to", &to_arg, "--url", &url]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains(&format!("downloading {url} ({} bytes)", served.len())), "{stderr}");
    assert!(stderr.contains(&format!("MD5 {}, expected the published c32a1d", md5_hex(&served))), "{stderr}");
    assert!(listing(&to).is_empty(), "the download is removed: {:?}", listing(&to));

    // An archive downloaded elsewhere is checked the same way.
    let archive = dir.path().join("cifar-100-binary.tar.gz");
    std::fs::write(&archive, &served).expect("write");
    let (ok, _, stderr, _) = agent_fetch(&["cifar100", "--to", &to_arg, "--archive", &archive.display().to_string()]);
    assert!(!ok && stderr.contains("expected the published 03b5dce01913d631647c71ecec9e9cb8"), "{stderr}");
    let (ok, _, stderr, _) = agent_fetch(&["mnist", "--to", &to_arg]);
    assert!(!ok && stderr.contains("possible values: cifar10, cifar100, tinyimagenet"), "{stderr}");
}
