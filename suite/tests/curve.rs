//! CURVE on suite links: a suite with a server key talks only to followers that know
//! its public key, and they follow it exactly as over plain links.

use std::time::{Duration, Instant};

use clonewire_suite::sockets::{CurveClient, CurveKeyPair, CurvePublicKey, CurveSecretKey};
use clonewire_suite::{Event, Follower, FollowerConfig, Publisher, PublisherConfig};
use serde_json::json;

fn curve_suite(keys: &CurveKeyPair) -> Publisher {
    let mut config = PublisherConfig::new("secret-suite");
    config.heartbeat_ms = 50;
    config.curve_secret_key = Some(keys.secret.clone());
    let suite = Publisher::start(config).expect("publisher starts with CURVE");
    suite
        .publish("taskProxies", json!({"1/a": {"status": "running"}}))
        .expect("published");
    suite
}

fn follower(suite: &Publisher, curve: Option<CurveClient>) -> Follower {
    let mut config = FollowerConfig::new(suite.pub_endpoint(), suite.rep_endpoint());
    config.request_timeout = Duration::from_millis(500);
    config.backoff_max = Duration::from_millis(200);
    config.curve = curve;
    Follower::connect(config).expect("follower starts")
}

/// True when the follower joins and holds the suite's topic within `time`.
fn joins_within(f: &mut Follower, suite: &Publisher, time: Duration) -> bool {
    let end = Instant::now() + time;
    let mut joined = false;
    while Instant::now() < end {
        if let Ok(Some(Event::Joined { .. })) = f.next_event(Duration::from_millis(20)) {
            joined = true;
        }
        let want = suite.topic_state("taskProxies");
        if joined && f.topic("taskProxies").map(|t| t.hash()) == Some(want.hash) {
            return true;
        }
    }
    false
}

#[test]
fn a_follower_with_the_server_key_joins_and_follows() {
    let keys = CurveKeyPair::generate().expect("libzmq has CURVE");
    let suite = curve_suite(&keys);
    let mut f = follower(&suite, Some(CurveClient::ephemeral(keys.public.clone()).unwrap()));
    assert!(joins_within(&mut f, &suite, Duration::from_secs(5)));
    suite
        .publish("taskProxies", json!({"1/a": {"status": "succeeded"}}))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end && f.seq("taskProxies") != Some(2) {
        let _ = f.next_event(Duration::from_millis(20));
    }
    assert_eq!(
        f.seq("taskProxies"),
        Some(2),
        "deltas arrive over the encrypted PUB link"
    );
}

#[test]
fn a_follower_without_the_key_or_with_a_wrong_one_never_joins() {
    let keys = CurveKeyPair::generate().expect("libzmq has CURVE");
    let suite = curve_suite(&keys);
    let mut plain = follower(&suite, None);
    let other = CurveKeyPair::generate().unwrap();
    let mut wrong = follower(&suite, Some(CurveClient::ephemeral(other.public).unwrap()));
    assert!(
        !joins_within(&mut plain, &suite, Duration::from_secs(3)),
        "plain follower joined"
    );
    assert!(
        !joins_within(&mut wrong, &suite, Duration::from_secs(1)),
        "wrong key joined"
    );
    assert_eq!(plain.topic("taskProxies").map(|t| t.hash()), None);
}

#[test]
fn keys_are_checked_and_secret_files_must_be_private() {
    assert!(CurvePublicKey::parse("too short").is_err());
    assert!(CurvePublicKey::parse(&"\"".repeat(40)).is_err(), "not Z85");
    let keys = CurveKeyPair::generate().unwrap();
    assert_eq!(
        CurvePublicKey::parse(&format!("  {}\n", keys.public.0)),
        Ok(keys.public.clone())
    );
    assert!(
        !format!("{:?}", keys).contains(&keys.secret.0),
        "Debug hides the secret"
    );

    let dir = std::env::temp_dir().join(format!("clonewire-curve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("suite.key");
    std::fs::write(&file, format!("{}\n", keys.secret.0)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = CurveSecretKey::from_file(&file).unwrap_err().to_string();
        assert!(refused.contains("chmod 600"), "{refused}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert_eq!(CurveSecretKey::from_file(&file).unwrap(), keys.secret);
    std::fs::remove_dir_all(&dir).unwrap();
}
