//! CURVE on suite links: a suite with a server key talks only to followers that know
//! its public key, and they follow it exactly as over plain links.

use std::time::{Duration, Instant};

use clonewire_core::Seq;
use clonewire_suite::{FollowEvent, Follower, FollowerConfig, Publisher, PublisherConfig};
use clonewire_zmq::sockets::{CurveClient, CurveKeyPair, CurvePublicKey, CurveSecretKey};
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
    config.machine.retry.request_timeout = Duration::from_millis(500);
    config.machine.retry.backoff_max = Duration::from_millis(200);
    config.curve = curve;
    Follower::connect(config).expect("follower starts")
}

/// True when the follower joins and holds the suite's topic within `time`.
fn joins_within(f: &mut Follower, suite: &Publisher, time: Duration) -> bool {
    let end = Instant::now() + time;
    let mut joined = false;
    while Instant::now() < end {
        if let Ok(Some(FollowEvent::Joined { .. })) = f.next_event(Duration::from_millis(20)) {
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
    while Instant::now() < end && f.seq("taskProxies") != Some(Seq(2)) {
        let _ = f.next_event(Duration::from_millis(20));
    }
    assert_eq!(
        f.seq("taskProxies"),
        Some(Seq(2)),
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

#[test]
fn with_an_allow_list_only_listed_followers_join() {
    let keys = CurveKeyPair::generate().expect("libzmq has CURVE");
    let listed = CurveKeyPair::generate().unwrap();
    let mut config = PublisherConfig::new("listed-only");
    config.heartbeat_ms = 50;
    config.curve_secret_key = Some(keys.secret.clone());
    config.curve_allowed_clients = Some(vec![listed.public.clone()]);
    let suite = Publisher::start(config).expect("publisher starts with an allow-list");
    suite
        .publish("taskProxies", json!({"1/a": {"status": "running"}}))
        .unwrap();
    let mut outsider = follower(&suite, Some(CurveClient::ephemeral(keys.public.clone()).unwrap()));
    let mut member = follower(
        &suite,
        Some(CurveClient {
            server_key: keys.public.clone(),
            keys: listed,
        }),
    );
    assert!(
        joins_within(&mut member, &suite, Duration::from_secs(5)),
        "a listed follower joins"
    );
    assert!(
        !joins_within(&mut outsider, &suite, Duration::from_secs(1)),
        "a follower that knows the server key but is not listed never joins"
    );
    assert_eq!(outsider.topic("taskProxies").map(|t| t.hash()), None);
}

#[test]
fn an_allow_list_needs_a_server_key_and_key_files_are_read_whole() {
    let mut config = PublisherConfig::new("no-key");
    config.curve_allowed_clients = Some(Vec::new());
    let refused = Publisher::start(config).err().expect("refused").to_string();
    assert!(refused.contains("secret key"), "{refused}");

    let dir = std::env::temp_dir().join(format!("clonewire-curve-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (
        CurveKeyPair::generate().unwrap(),
        CurveKeyPair::generate().unwrap(),
    );
    let list = dir.join("followers");
    std::fs::write(
        &list,
        format!("# the relay\n{}\n\n{}  the tap\n", a.public.0, b.public.0),
    )
    .unwrap();
    assert_eq!(
        CurvePublicKey::list_from_file(&list).unwrap(),
        vec![a.public.clone(), b.public.clone()]
    );
    std::fs::write(&list, format!("{}\nnot a key\n", a.public.0)).unwrap();
    let bad = CurvePublicKey::list_from_file(&list).unwrap_err().to_string();
    assert!(bad.contains(":2:"), "the bad line is named: {bad}");

    let secret = dir.join("relay.key");
    std::fs::write(&secret, format!("{}\n", a.secret.0)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let missing = CurveKeyPair::from_file(&secret).unwrap_err().to_string();
    assert!(missing.contains("relay.key.pub"), "{missing}");
    std::fs::write(dir.join("relay.key.pub"), format!("{}\n", a.public.0)).unwrap();
    let pair = CurveKeyPair::from_file(&secret).unwrap();
    assert_eq!((pair.public, pair.secret), (a.public, a.secret));
    std::fs::remove_dir_all(&dir).unwrap();
}
