//! IPNS: the specification's test vectors, publish/resolve/routing round trips, and an
//! independent check of a published record against the specification's rules.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ipfs_api_backend_hyper::IpfsApi;
use ipfs_api_backend_hyper::request::Add;
use ipld_core::ipld::Ipld;
use libp2p_identity::PublicKey;
use px_store::ipns::{IpnsError, IpnsName, SignatureKind, VerifyOptions, verify_record};

use crate::common::{FIXTURES, RoutingGet, expect_error, spawn_store};

fn vectors() -> Vec<(String, String, Vec<u8>)> {
    let dir = format!("{FIXTURES}/ipns");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixtures/ipns") {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        let stem = file.strip_suffix(".ipns-record").unwrap();
        let (name, case) = stem.split_once('_').unwrap();
        out.push((
            name.to_string(),
            case.to_string(),
            std::fs::read(&path).unwrap(),
        ));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(out.len(), 6);
    out
}

fn expected(case: &str) -> Option<&'static str> {
    match case {
        "v1" => None,
        "v1-v2" => Some("/ipfs/bafkqaddwgevxmmraojswg33smq"),
        "v1-v2-broken-v1-value" => None,
        "v1-v2-broken-signature-v2" => None,
        "v1-v2-broken-signature-v1" => {
            Some("/ipfs/bafkqahtwgevxmmrao5uxi2bamjzg623fnyqhg2lhnzqxi5lsmuqhmmi")
        }
        "v2" => Some("/ipfs/bafkqadtwgiww63tmpeqhezldn5zgi"),
        other => panic!("unknown vector {other}"),
    }
}

#[test]
fn spec_vectors_get_the_listed_verdicts() {
    for (name, case, record) in vectors() {
        let name: IpnsName = name.parse().unwrap();
        let got = verify_record(&name, &record, &VerifyOptions::default());
        match expected(&case) {
            Some(value) => {
                let rec = got.clone().unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(rec.value, value, "{case}");
                assert_eq!(rec.signature, SignatureKind::V2);
            }
            None => assert!(got.is_err(), "{case} must be rejected, got {got:?}"),
        }
        if case == "v1" {
            assert_eq!(got, Err(IpnsError::MissingSignatureV2));
            // BTFS mode accepts the V1-only record on its (valid) V1 signature.
            let opts = VerifyOptions {
                allow_v1_only: true,
                ..Default::default()
            };
            let rec = verify_record(&name, &record, &opts).expect("v1 in BTFS mode");
            assert_eq!(rec.signature, SignatureKind::V1Only);
        }
    }
}

#[tokio::test]
async fn routing_put_accepts_valid_vectors_and_rejects_the_rest() {
    let store = spawn_store().await;
    for (name, case, record) in vectors() {
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(record.clone()));
        let res = store
            .http
            .post(store.url(&format!("routing/put?arg=/ipns/{name}")))
            .multipart(form)
            .send()
            .await
            .unwrap();
        match expected(&case) {
            Some(value) => {
                assert_eq!(res.status(), 200, "{case}");
                let resolved = store
                    .client
                    .name_resolve(Some(&format!("/ipns/{name}")), true, false)
                    .await
                    .unwrap();
                assert_eq!(resolved.path, value, "{case}");
                let (status, raw) = store
                    .raw(RoutingGet {
                        encoding: "text",
                        arg: format!("/ipns/{name}"),
                    })
                    .await;
                assert_eq!((status, raw.to_vec()), (200, record), "{case}");
            }
            None => {
                expect_error(res, 400).await;
            }
        }
    }
    store.stop().await;
}

/// A protobuf reader written for this test only, so the check does not reuse the crate's.
fn pb_fields(mut buf: &[u8]) -> BTreeMap<u64, Vec<u8>> {
    fn varint(buf: &mut &[u8]) -> u64 {
        let mut v = 0;
        let mut shift = 0;
        loop {
            let b = buf[0];
            *buf = &buf[1..];
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                return v;
            }
        }
    }
    let mut out = BTreeMap::new();
    while !buf.is_empty() {
        let key = varint(&mut buf);
        match key & 7 {
            0 => {
                let v = varint(&mut buf);
                out.insert(key >> 3, v.to_be_bytes().to_vec());
            }
            2 => {
                let len = varint(&mut buf) as usize;
                out.insert(key >> 3, buf[..len].to_vec());
                buf = &buf[len..];
            }
            w => panic!("unexpected wire type {w}"),
        }
    }
    out
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().unwrap())
}

#[tokio::test]
async fn publish_resolve_and_routing_get_round_trip() {
    let store = spawn_store().await;
    let key_id = store.key_gen("usage").await;
    assert!(key_id.starts_with("k51"), "{key_id}");
    let listed = store.client.key_list().await.unwrap();
    assert!(
        listed
            .keys
            .iter()
            .any(|k| k.name == "usage" && k.id == key_id)
    );

    // Kubo's numbering: 0 for the first record, one up for each new value.
    for round in 0..3u8 {
        let (cid, _) = store.add(vec![round; 100], Add::default()).await;
        let published = store
            .client
            .name_publish(&cid, true, Some("2h"), Some("90s"), Some("usage"))
            .await
            .unwrap();
        assert_eq!(published.name, key_id);
        assert_eq!(published.value, format!("/ipfs/{cid}"));

        let resolved = store
            .client
            .name_resolve(Some(&key_id), true, false)
            .await
            .unwrap();
        assert_eq!(resolved.path, format!("/ipfs/{cid}"));

        let (status, record) = store
            .raw(RoutingGet {
                encoding: "text",
                arg: format!("/ipns/{}", key_id),
            })
            .await;
        assert_eq!(status, 200);
        let seq = check_record_independently(&key_id, &record, &format!("/ipfs/{cid}"), 90, 7200);
        assert_eq!(
            seq,
            u64::from(round),
            "sequence of the record for a new value"
        );

        // And the crate's own verifier agrees.
        let name: IpnsName = key_id.parse().unwrap();
        let v = verify_record(&name, &record, &VerifyOptions::default()).unwrap();
        assert_eq!(v.sequence, seq);
    }

    // Publishing with the default key names the identity.
    let (cid, _) = store.add(b"self".to_vec(), Add::default()).await;
    let published = store
        .client
        .name_publish(&cid, true, None, None, None)
        .await
        .unwrap();
    assert_eq!(
        published.name,
        store.client.key_list().await.unwrap().keys[0].id
    );
    store.stop().await;
}

/// Checks a record against the IPNS specification without the crate's code; returns the
/// sequence number.
fn check_record_independently(
    name: &str,
    record: &[u8],
    value: &str,
    ttl_secs: u64,
    lifetime_secs: u64,
) -> u64 {
    assert!(record.len() <= 10 * 1024);
    let f = pb_fields(record);
    // The public key is inlined in the name (identity multihash of the protobuf key).
    let peer: libp2p_identity::PeerId = {
        let cid = cid::Cid::try_from(name).unwrap();
        assert_eq!(cid.codec(), 0x72, "libp2p-key codec");
        libp2p_identity::PeerId::from_multihash(*cid.hash()).unwrap()
    };
    let mh = peer.as_ref();
    assert_eq!(mh.code(), 0, "ed25519 names inline the key");
    let public = PublicKey::try_decode_protobuf(mh.digest()).unwrap();
    assert!(!f.contains_key(&7), "no pubKey needed for an inlined key");

    // V2: signature over "ipns-signature:" || data.
    let data = &f[&9];
    let mut msg = b"ipns-signature:".to_vec();
    msg.extend_from_slice(data);
    assert!(public.verify(&msg, &f[&8]), "signatureV2");

    // data is canonical DAG-CBOR with exactly the five fields.
    let ipld: Ipld = serde_ipld_dagcbor::from_slice(data).unwrap();
    assert_eq!(
        serde_ipld_dagcbor::to_vec(&ipld).unwrap(),
        *data,
        "canonical"
    );
    let Ipld::Map(map) = ipld else {
        panic!("data is not a map")
    };
    let keys: Vec<_> = map.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["Sequence", "TTL", "Validity", "ValidityType", "Value"]
    );
    let Ipld::Bytes(v) = &map["Value"] else {
        panic!()
    };
    assert_eq!(v, value.as_bytes());
    let Ipld::Bytes(validity) = &map["Validity"] else {
        panic!()
    };
    assert_eq!(map["ValidityType"], Ipld::Integer(0));
    let Ipld::Integer(seq) = map["Sequence"] else {
        panic!()
    };
    let Ipld::Integer(ttl) = map["TTL"] else {
        panic!()
    };
    assert_eq!(ttl, i128::from(ttl_secs) * 1_000_000_000);

    // The V1 fields mirror data, and the V1 signature covers value || validity || "EOL".
    assert_eq!(f[&1], *v);
    assert_eq!(f[&4], *validity);
    assert_eq!(be_u64(&f[&3]), 0);
    assert_eq!(i128::from(be_u64(&f[&5])), seq);
    assert_eq!(i128::from(be_u64(&f[&6])), ttl);
    let mut v1 = v.clone();
    v1.extend_from_slice(validity);
    v1.extend_from_slice(b"EOL");
    assert!(public.verify(&v1, &f[&2]), "signatureV1");

    // Validity: RFC 3339 with nanoseconds, UTC, about now + lifetime.
    let text = std::str::from_utf8(validity).unwrap();
    assert!(text.ends_with('Z') && text.len() == 30, "{text}");
    let eol = px_store::ipns::time::parse_rfc3339(text).unwrap();
    let expect = SystemTime::now() + Duration::from_secs(lifetime_secs);
    let diff = match expect.duration_since(eol) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(diff < Duration::from_secs(60), "EOL {text}");
    u64::try_from(seq).unwrap()
}

#[tokio::test]
async fn routing_put_rejects_stale_and_foreign_records() {
    let store = spawn_store().await;
    let key_id = store.key_gen("k").await;
    let other_id = store.key_gen("other").await;
    let (cid, _) = store.add(b"x".to_vec(), Add::default()).await;
    store
        .client
        .name_publish(&cid, true, None, None, Some("k"))
        .await
        .unwrap();
    let (_, first) = store
        .raw(RoutingGet {
            encoding: "text",
            arg: format!("/ipns/{}", key_id),
        })
        .await;
    store
        .client
        .name_publish(&cid, true, None, None, Some("k"))
        .await
        .unwrap();

    let put = |name: String, record: Vec<u8>| {
        let form =
            reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(record));
        store
            .http
            .post(store.url(&format!("routing/put?arg=/ipns/{name}")))
            .multipart(form)
            .send()
    };
    // Older sequence than the stored one.
    let msg = expect_error(put(key_id.clone(), first.to_vec()).await.unwrap(), 400).await;
    assert!(msg.contains("not newer"), "{msg}");
    // Valid record, wrong name.
    let msg = expect_error(put(other_id.clone(), first.to_vec()).await.unwrap(), 400).await;
    assert!(msg.contains("signature"), "{msg}");
    // Garbage.
    expect_error(put(key_id.clone(), vec![0xff; 40]).await.unwrap(), 400).await;
    // Over the size limit.
    expect_error(put(key_id.clone(), vec![0; 11 * 1024]).await.unwrap(), 400).await;
    store.stop().await;
}
