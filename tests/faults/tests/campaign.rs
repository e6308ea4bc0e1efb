//! The short campaign: about a minute of faults, then every client must hold the
//! projection of its suite's state within two seconds of the suites pausing, with the
//! relay's memory under its bound throughout.

use std::time::Duration;

use clonewire_faults::CampaignConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_converges_after_a_minute_of_faults() {
    let mut config = CampaignConfig::new(Duration::from_secs(60));
    config.checkpoint_every = Duration::from_secs(25);
    let report = clonewire_faults::run(config).await;
    println!("{report}");
    assert!(report.passed(), "{report}");
    let faults = |kind: &str| report.faults.get(kind).copied().unwrap_or(0);
    assert!(
        faults("suite SIGKILL + restart") >= 2,
        "suites were killed: {report}"
    );
    assert!(
        faults("link: deltas dropped") >= 1,
        "deltas were dropped: {report}"
    );
    assert!(
        faults("never-reading client") >= 5,
        "five clients never read from the start: {report}"
    );
    let last = report.checkpoints.last().expect("a final checkpoint");
    assert!(last.converged_in.is_some_and(|d| d <= Duration::from_secs(2)));
}
