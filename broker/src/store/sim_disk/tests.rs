//! Tests of the simulated disk: what a power cut keeps, and each injected fault.

use super::*;

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn read_all(f: &dyn DiskFile) -> Vec<u8> {
    let mut buf = vec![0u8; f.size().unwrap() as usize];
    assert_eq!(f.read_at(0, &mut buf).unwrap(), buf.len());
    buf
}

#[test]
fn power_cut_keeps_only_what_was_synced() {
    let disk = SimDisk::new();
    disk.create_dir_all(p("/d")).unwrap();
    disk.sync_dir(p("/")).unwrap();
    let f = disk.open(p("/d/a"), true).unwrap();
    f.write_all_at(0, b"durable").unwrap();
    f.sync_data().unwrap();
    disk.sync_dir(p("/d")).unwrap();
    f.write_all_at(7, b" lost").unwrap();
    let g = disk.open(p("/d/b"), true).unwrap();
    g.write_all_at(0, b"x").unwrap();
    g.sync_data().unwrap(); // data synced, but the name never was
    disk.power_cut();
    assert!(f.size().is_err(), "nothing works while the power is off");
    disk.restart();
    assert!(f.size().is_err(), "old handles stay dead");
    assert_eq!(disk.list_dir(p("/d")).unwrap(), vec!["a".to_string()]);
    let f = disk.open(p("/d/a"), false).unwrap();
    assert_eq!(read_all(&*f), b"durable");
}

#[test]
fn removal_needs_a_dir_sync_and_truncation_a_file_sync() {
    let disk = SimDisk::new();
    disk.create_dir_all(p("/d")).unwrap();
    disk.sync_dir(p("/")).unwrap();
    let f = disk.open(p("/d/a"), true).unwrap();
    f.write_all_at(0, b"abcdef").unwrap();
    f.sync_data().unwrap();
    disk.sync_dir(p("/d")).unwrap();
    f.set_len(2).unwrap();
    disk.remove_file(p("/d/a")).unwrap();
    assert!(!disk.exists(p("/d/a")).unwrap());
    disk.power_cut();
    disk.restart();
    let f = disk.open(p("/d/a"), false).unwrap();
    assert_eq!(read_all(&*f), b"abcdef");
}

#[test]
fn a_rename_over_a_file_is_durable_whole_once_the_directory_is_synced() {
    let disk = SimDisk::new();
    disk.create_dir_all(p("/d")).unwrap();
    disk.sync_dir(p("/")).unwrap();
    let old = disk.open(p("/d/a"), true).unwrap();
    old.write_all_at(0, b"old").unwrap();
    old.sync_data().unwrap();
    disk.sync_dir(p("/d")).unwrap();
    let write_new = |disk: &SimDisk| {
        let new = disk.open(p("/d/a.tmp"), true).unwrap();
        new.write_all_at(0, b"new").unwrap();
        new.sync_data().unwrap();
        disk.rename(p("/d/a.tmp"), p("/d/a")).unwrap();
        let live = disk.open(p("/d/a"), false).unwrap();
        assert_eq!(read_all(&*live), b"new");
        assert!(!disk.exists(p("/d/a.tmp")).unwrap());
    };
    write_new(&disk);
    disk.power_cut();
    disk.restart();
    let f = disk.open(p("/d/a"), false).unwrap();
    assert_eq!(read_all(&*f), b"old", "the rename was never synced");
    assert!(!disk.exists(p("/d/a.tmp")).unwrap());

    write_new(&disk);
    disk.sync_dir(p("/d")).unwrap();
    disk.power_cut();
    disk.restart();
    let f = disk.open(p("/d/a"), false).unwrap();
    assert_eq!(read_all(&*f), b"new");
    assert_eq!(disk.list_dir(p("/d")).unwrap(), vec!["a".to_string()]);
    assert_eq!(
        disk.rename(p("/d/missing"), p("/d/b")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn directories_need_their_parent_synced() {
    let disk = SimDisk::new();
    disk.create_dir_all(p("/a/b")).unwrap();
    disk.sync_dir(p("/a")).unwrap(); // b is durable in a, but a is not in /
    let f = disk.open(p("/a/b/f"), true).unwrap();
    f.sync_data().unwrap();
    disk.sync_dir(p("/a/b")).unwrap();
    disk.power_cut();
    disk.restart();
    assert!(!disk.exists(p("/a")).unwrap());
    assert!(!disk.exists(p("/a/b/f")).unwrap());
}

#[test]
fn torn_cut_keeps_a_prefix_of_the_appended_bytes() {
    let disk = SimDisk::new();
    disk.create_dir_all(p("/d")).unwrap();
    disk.sync_dir(p("/")).unwrap();
    let f = disk.open(p("/d/a"), true).unwrap();
    f.write_all_at(0, b"0123").unwrap();
    f.sync_data().unwrap();
    disk.sync_dir(p("/d")).unwrap();
    f.write_all_at(4, b"456789").unwrap();
    disk.power_cut_torn(7);
    disk.restart();
    let f = disk.open(p("/d/a"), false).unwrap();
    let got = read_all(&*f);
    assert!(got.len() >= 4 && got.len() <= 10);
    assert_eq!(&got[..], &b"0123456789"[..got.len()]);
}

#[test]
fn faults_capacity_denial_sync_and_bit_flips() {
    let disk = SimDisk::new();
    disk.create_dir_all(p("/d")).unwrap();
    let f = disk.open(p("/d/a"), true).unwrap();
    disk.set_capacity(Some(5));
    let err = f.write_all_at(0, b"1234567").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    assert_eq!(read_all(&*f), b"12345", "a full disk writes what fits");
    f.set_len(3).unwrap();
    f.write_all_at(3, b"xy").unwrap();
    disk.set_capacity(None);

    disk.deny("/d/secret");
    let err = disk.open(p("/d/secret/x"), true).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(
        disk.create_dir_all(p("/d/secret")).unwrap_err().kind(),
        io::ErrorKind::PermissionDenied
    );
    disk.allow_all();

    disk.fail_next_sync();
    assert!(f.sync_data().is_err());
    f.sync_data().unwrap();

    disk.flip_bit(p("/d/a"), 0, 0).unwrap();
    assert_eq!(read_all(&*f), b"023xy");
    let c = disk.counters();
    assert_eq!(c.syncs, 1);
    assert!(c.reads >= 2);
}

#[test]
fn cut_after_counts_mutations() {
    let disk = SimDisk::new();
    disk.create_dir_all(p("/d")).unwrap();
    let f = disk.open(p("/d/a"), true).unwrap();
    disk.cut_power_after(2);
    f.write_all_at(0, b"a").unwrap();
    f.write_all_at(1, b"b").unwrap();
    assert!(f.write_all_at(2, b"c").is_err());
    assert!(disk.is_down());
    disk.restart();
    assert!(!disk.exists(p("/d")).unwrap(), "nothing was ever synced");
}

#[test]
fn fork_is_independent() {
    let disk = SimDisk::new();
    disk.create_dir_all(p("/d")).unwrap();
    let f = disk.open(p("/d/a"), true).unwrap();
    f.write_all_at(0, b"abc").unwrap();
    let copy = disk.fork();
    copy.truncate(p("/d/a"), 1).unwrap();
    assert_eq!(disk.file_bytes(p("/d/a")).unwrap(), b"abc");
    assert_eq!(copy.file_bytes(p("/d/a")).unwrap(), b"a");
    assert_eq!(copy.files(), vec![PathBuf::from("/d/a")]);
}
