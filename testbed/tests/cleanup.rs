//! Dropping a test bed leaves no etcd, kube-apiserver or moto process behind.

use eks_testbed::{TestBed, TestBedOptions};

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would still show as state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.split_whitespace().nth(2).is_none_or(|s| s != "Z"))
        .unwrap_or(false)
}

#[tokio::test]
async fn dropping_the_test_bed_stops_every_process() {
    let bed = TestBed::start(TestBedOptions {
        clusters: 1,
        name_prefix: "cleanup".into(),
    })
    .await
    .unwrap();
    let pids = bed.pids();
    assert_eq!(pids.len(), 3, "etcd, moto and one kube-apiserver");
    assert!(pids.iter().all(|p| alive(*p)));
    drop(bed);
    let still = pids.iter().filter(|p| alive(**p)).count();
    assert_eq!(still, 0, "processes left running: {pids:?}");
}
