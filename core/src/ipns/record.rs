//! The `IpnsEntry` protobuf, record creation and verification.
//!
//! The protobuf reader and writer are hand-written: the message has nine optional scalar
//! fields, the reader must reject wrong wire types and truncation rather than guess, and
//! `rust-unixfs`/`libp2p-identity` keep their protobuf helpers private.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ipld_core::ipld::Ipld;
use libp2p_identity::{Keypair, PublicKey};

use super::time::{format_rfc3339_nanos, parse_rfc3339};
use super::{IpnsError, IpnsName};

/// Records larger than this are invalid (specification: 10 KiB).
pub const MAX_RECORD_SIZE: usize = 10 * 1024;

const SIGNATURE_V2_PREFIX: &[u8] = b"ipns-signature:";

/// The decoded `IpnsEntry` protobuf. Absent fields are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpnsEntry {
    /// Field 1: V1 value (a path such as `/ipfs/<cid>`).
    pub value: Option<Vec<u8>>,
    /// Field 2: V1 signature.
    pub signature_v1: Option<Vec<u8>>,
    /// Field 3: V1 validity type (0 = EOL).
    pub validity_type: Option<u64>,
    /// Field 4: V1 validity (RFC 3339 bytes).
    pub validity: Option<Vec<u8>>,
    /// Field 5: V1 sequence number.
    pub sequence: Option<u64>,
    /// Field 6: V1 TTL in nanoseconds.
    pub ttl: Option<u64>,
    /// Field 7: protobuf-encoded libp2p public key, when not inlined in the name.
    pub pub_key: Option<Vec<u8>>,
    /// Field 8: V2 signature over `"ipns-signature:" || data`.
    pub signature_v2: Option<Vec<u8>>,
    /// Field 9: DAG-CBOR data.
    pub data: Option<Vec<u8>>,
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, IpnsError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or(IpnsError::Malformed("truncated varint"))?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(IpnsError::Malformed("varint overflow"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(IpnsError::Malformed("varint overflow"))
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl IpnsEntry {
    /// Decodes the protobuf. Unknown fields are skipped, as protobuf requires; a known field with
    /// the wrong wire type, or truncated input, is an error.
    pub fn decode(buf: &[u8]) -> Result<Self, IpnsError> {
        let mut entry = IpnsEntry::default();
        let mut pos = 0;
        while pos < buf.len() {
            let key = read_varint(buf, &mut pos)?;
            let (field, wire) = (key >> 3, key & 7);
            match wire {
                0 => {
                    let v = read_varint(buf, &mut pos)?;
                    match field {
                        3 => entry.validity_type = Some(v),
                        5 => entry.sequence = Some(v),
                        6 => entry.ttl = Some(v),
                        1 | 2 | 4 | 7 | 8 | 9 => {
                            return Err(IpnsError::Malformed("wrong wire type"));
                        }
                        _ => {}
                    }
                }
                2 => {
                    let len = read_varint(buf, &mut pos)?;
                    let end = usize::try_from(len)
                        .ok()
                        .and_then(|l| pos.checked_add(l))
                        .filter(|&end| end <= buf.len())
                        .ok_or(IpnsError::Malformed("truncated field"))?;
                    let bytes = buf[pos..end].to_vec();
                    pos = end;
                    match field {
                        1 => entry.value = Some(bytes),
                        2 => entry.signature_v1 = Some(bytes),
                        4 => entry.validity = Some(bytes),
                        7 => entry.pub_key = Some(bytes),
                        8 => entry.signature_v2 = Some(bytes),
                        9 => entry.data = Some(bytes),
                        3 | 5 | 6 => return Err(IpnsError::Malformed("wrong wire type")),
                        _ => {}
                    }
                }
                1 | 5 if (1..=9).contains(&field) => {
                    return Err(IpnsError::Malformed("wrong wire type"));
                }
                1 => pos = pos.checked_add(8).ok_or(IpnsError::Malformed("overflow"))?,
                5 => pos = pos.checked_add(4).ok_or(IpnsError::Malformed("overflow"))?,
                _ => return Err(IpnsError::Malformed("unsupported wire type")),
            }
            if field == 0 {
                return Err(IpnsError::Malformed("field number 0"));
            }
            if pos > buf.len() {
                return Err(IpnsError::Malformed("truncated field"));
            }
        }
        Ok(entry)
    }

    /// Encodes the protobuf, fields in field-number order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let bytes = |out: &mut Vec<u8>, field: u64, v: &Option<Vec<u8>>| {
            if let Some(v) = v {
                write_varint(out, field << 3 | 2);
                write_varint(out, v.len() as u64);
                out.extend_from_slice(v);
            }
        };
        let varint = |out: &mut Vec<u8>, field: u64, v: Option<u64>| {
            if let Some(v) = v {
                write_varint(out, field << 3);
                write_varint(out, v);
            }
        };
        bytes(&mut out, 1, &self.value);
        bytes(&mut out, 2, &self.signature_v1);
        varint(&mut out, 3, self.validity_type);
        bytes(&mut out, 4, &self.validity);
        varint(&mut out, 5, self.sequence);
        varint(&mut out, 6, self.ttl);
        bytes(&mut out, 7, &self.pub_key);
        bytes(&mut out, 8, &self.signature_v2);
        bytes(&mut out, 9, &self.data);
        out
    }
}

/// Which signature a record was accepted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureKind {
    /// The V2 signature over the DAG-CBOR data (the specification's rule).
    V2,
    /// Only the legacy V1 signature (accepted with [`VerifyOptions::allow_v1_only`]).
    V1Only,
}

/// A record that passed [`verify_record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRecord {
    /// The value, e.g. `/ipfs/bafy...`.
    pub value: String,
    /// Sequence number.
    pub sequence: u64,
    /// End of life (ValidityType EOL).
    pub validity: SystemTime,
    /// Caching hint.
    pub ttl: Duration,
    /// The signature the record was accepted on.
    pub signature: SignatureKind,
}

/// Options for [`verify_record`].
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyOptions {
    /// Accept records that carry only a V1 signature (BTFS "BTNS" records). The IPNS
    /// specification treats those as invalid; enable only for a configured BTFS backend.
    pub allow_v1_only: bool,
    /// The time to check the end of life against; `None` means now.
    pub now: Option<SystemTime>,
}

/// Creates and signs a record for `value` with both V1 and V2 signatures and the V1 fields
/// filled in, as Kubo does. The public key is embedded only when the name cannot inline it.
pub fn create_record(
    keypair: &Keypair,
    value: &str,
    sequence: u64,
    eol: SystemTime,
    ttl: Duration,
) -> Result<Vec<u8>, IpnsError> {
    let validity = format_rfc3339_nanos(eol).into_bytes();
    let ttl_ns = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    let data = encode_data(value.as_bytes(), &validity, sequence, ttl_ns)?;

    let mut v2_msg = SIGNATURE_V2_PREFIX.to_vec();
    v2_msg.extend_from_slice(&data);
    let signature_v2 = keypair
        .sign(&v2_msg)
        .map_err(|e| IpnsError::Signing(e.to_string()))?;

    let signature_v1 = keypair
        .sign(&v1_message(value.as_bytes(), &validity))
        .map_err(|e| IpnsError::Signing(e.to_string()))?;

    let public = keypair.public();
    let pub_key = IpnsName::from_public_key(&public)
        .inline_public_key()
        .is_none()
        .then(|| public.encode_protobuf());

    let entry = IpnsEntry {
        value: Some(value.as_bytes().to_vec()),
        signature_v1: Some(signature_v1),
        validity_type: Some(0),
        validity: Some(validity),
        sequence: Some(sequence),
        ttl: Some(ttl_ns),
        pub_key,
        signature_v2: Some(signature_v2),
        data: Some(data),
    };
    let bytes = entry.encode();
    if bytes.len() > MAX_RECORD_SIZE {
        return Err(IpnsError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

fn v1_message(value: &[u8], validity: &[u8]) -> Vec<u8> {
    // V1 signs value || validity || the validity type's name ("EOL").
    let mut msg = Vec::with_capacity(value.len() + validity.len() + 3);
    msg.extend_from_slice(value);
    msg.extend_from_slice(validity);
    msg.extend_from_slice(b"EOL");
    msg
}

fn encode_data(
    value: &[u8],
    validity: &[u8],
    sequence: u64,
    ttl_ns: u64,
) -> Result<Vec<u8>, IpnsError> {
    let map = BTreeMap::from([
        ("Value".to_string(), Ipld::Bytes(value.to_vec())),
        ("Validity".to_string(), Ipld::Bytes(validity.to_vec())),
        ("ValidityType".to_string(), Ipld::Integer(0)),
        ("Sequence".to_string(), Ipld::Integer(i128::from(sequence))),
        ("TTL".to_string(), Ipld::Integer(i128::from(ttl_ns))),
    ]);
    // serde_ipld_dagcbor writes map keys in DAG-CBOR canonical order (length, then bytes).
    serde_ipld_dagcbor::to_vec(&Ipld::Map(map)).map_err(|e| IpnsError::Signing(e.to_string()))
}

/// The fields of the signed DAG-CBOR `data`.
struct Data {
    value: Vec<u8>,
    validity: Vec<u8>,
    validity_type: u64,
    sequence: u64,
    ttl: u64,
}

fn decode_data(bytes: &[u8]) -> Result<Data, IpnsError> {
    let ipld: Ipld = serde_ipld_dagcbor::from_slice(bytes)
        .map_err(|e| IpnsError::MalformedData(e.to_string()))?;
    let Ipld::Map(mut map) = ipld else {
        return Err(IpnsError::MalformedData("not a map".into()));
    };
    let mut take_bytes = |k: &'static str| match map.remove(k) {
        Some(Ipld::Bytes(b)) => Ok(b),
        Some(_) => Err(IpnsError::MalformedData(format!("{k} is not bytes"))),
        None => Err(IpnsError::MalformedData(format!("{k} missing"))),
    };
    let value = take_bytes("Value")?;
    let validity = take_bytes("Validity")?;
    let mut take_uint = |k: &'static str| match map.remove(k) {
        Some(Ipld::Integer(i)) => {
            u64::try_from(i).map_err(|_| IpnsError::MalformedData(format!("{k} out of range")))
        }
        Some(_) => Err(IpnsError::MalformedData(format!("{k} is not an integer"))),
        None => Err(IpnsError::MalformedData(format!("{k} missing"))),
    };
    Ok(Data {
        value,
        validity,
        validity_type: take_uint("ValidityType")?,
        sequence: take_uint("Sequence")?,
        ttl: take_uint("TTL")?,
    })
}

/// Resolves the key that must have signed a record for `name`.
fn signer_key(name: &IpnsName, entry: &IpnsEntry) -> Result<PublicKey, IpnsError> {
    if let Some(key) = name.inline_public_key() {
        // If the record also embeds a key, it must be the same one.
        if let Some(embedded) = &entry.pub_key {
            let embedded = PublicKey::try_decode_protobuf(embedded)
                .map_err(|_| IpnsError::InvalidPublicKey)?;
            if embedded != key {
                return Err(IpnsError::PublicKeyMismatch);
            }
        }
        return Ok(key);
    }
    let embedded = entry
        .pub_key
        .as_deref()
        .ok_or(IpnsError::MissingPublicKey)?;
    let key = PublicKey::try_decode_protobuf(embedded).map_err(|_| IpnsError::InvalidPublicKey)?;
    if key.to_peer_id() != name.peer_id() {
        return Err(IpnsError::PublicKeyMismatch);
    }
    Ok(key)
}

fn check_eol(
    validity_type: u64,
    validity: &[u8],
    now: SystemTime,
) -> Result<SystemTime, IpnsError> {
    if validity_type != 0 {
        return Err(IpnsError::UnsupportedValidityType(validity_type));
    }
    let text = std::str::from_utf8(validity).map_err(|_| IpnsError::InvalidValidity)?;
    let eol = parse_rfc3339(text).ok_or(IpnsError::InvalidValidity)?;
    if now > eol {
        return Err(IpnsError::Expired(text.to_string()));
    }
    Ok(eol)
}

/// Verifies `record` for `name` following the specification:
///
/// 1. at most [`MAX_RECORD_SIZE`] bytes, a well-formed `IpnsEntry`;
/// 2. `signatureV2` and `data` present (else invalid, unless `allow_v1_only`);
/// 3. the signer's key is the one inlined in the name, or the embedded `pubKey` whose peer id is
///    the name;
/// 4. `signatureV2` verifies over `"ipns-signature:" || data`;
/// 5. `data` is a DAG-CBOR map with `Value`, `Validity`, `ValidityType`, `Sequence`, `TTL`, and
///    every V1 protobuf field present agrees with it (the V1 signature is not checked);
/// 6. `ValidityType` is EOL and the end of life has not passed.
pub fn verify_record(
    name: &IpnsName,
    record: &[u8],
    opts: &VerifyOptions,
) -> Result<VerifiedRecord, IpnsError> {
    if record.len() > MAX_RECORD_SIZE {
        return Err(IpnsError::TooLarge(record.len()));
    }
    let entry = IpnsEntry::decode(record)?;
    let now = opts.now.unwrap_or_else(SystemTime::now);
    let key = signer_key(name, &entry)?;

    let (Some(sig_v2), Some(data)) = (
        entry.signature_v2.as_deref().filter(|s| !s.is_empty()),
        entry.data.as_deref().filter(|d| !d.is_empty()),
    ) else {
        if opts.allow_v1_only {
            return verify_v1_only(&entry, &key, now);
        }
        return Err(IpnsError::MissingSignatureV2);
    };

    let mut msg = Vec::with_capacity(SIGNATURE_V2_PREFIX.len() + data.len());
    msg.extend_from_slice(SIGNATURE_V2_PREFIX);
    msg.extend_from_slice(data);
    if !key.verify(&msg, sig_v2) {
        return Err(IpnsError::InvalidSignatureV2);
    }

    let d = decode_data(data)?;
    if entry.value.as_ref().is_some_and(|v| *v != d.value) {
        return Err(IpnsError::FieldMismatch("value"));
    }
    if entry.validity.as_ref().is_some_and(|v| *v != d.validity) {
        return Err(IpnsError::FieldMismatch("validity"));
    }
    if entry.validity_type.is_some_and(|v| v != d.validity_type) {
        return Err(IpnsError::FieldMismatch("validityType"));
    }
    if entry.sequence.is_some_and(|v| v != d.sequence) {
        return Err(IpnsError::FieldMismatch("sequence"));
    }
    if entry.ttl.is_some_and(|v| v != d.ttl) {
        return Err(IpnsError::FieldMismatch("ttl"));
    }

    let validity = check_eol(d.validity_type, &d.validity, now)?;
    Ok(VerifiedRecord {
        value: String::from_utf8(d.value).map_err(|_| IpnsError::InvalidValue)?,
        sequence: d.sequence,
        validity,
        ttl: Duration::from_nanos(d.ttl),
        signature: SignatureKind::V2,
    })
}

fn verify_v1_only(
    entry: &IpnsEntry,
    key: &PublicKey,
    now: SystemTime,
) -> Result<VerifiedRecord, IpnsError> {
    let sig = entry
        .signature_v1
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(IpnsError::MissingSignature)?;
    let value = entry.value.clone().unwrap_or_default();
    let validity = entry.validity.clone().unwrap_or_default();
    if !key.verify(&v1_message(&value, &validity), sig) {
        return Err(IpnsError::InvalidSignatureV1);
    }
    let eol = check_eol(entry.validity_type.unwrap_or(0), &validity, now)?;
    Ok(VerifiedRecord {
        value: String::from_utf8(value).map_err(|_| IpnsError::InvalidValue)?,
        sequence: entry.sequence.unwrap_or(0),
        validity: eol,
        ttl: Duration::from_nanos(entry.ttl.unwrap_or(0)),
        signature: SignatureKind::V1Only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (Keypair, IpnsName) {
        let key = Keypair::generate_ed25519();
        let name = IpnsName::from_public_key(&key.public());
        (key, name)
    }

    fn eol() -> SystemTime {
        SystemTime::now() + Duration::from_secs(3600)
    }

    #[test]
    fn created_record_verifies() {
        let (key, name) = fresh();
        let rec = create_record(&key, "/ipfs/bafyabc", 7, eol(), Duration::from_secs(60)).unwrap();
        let v = verify_record(&name, &rec, &VerifyOptions::default()).unwrap();
        assert_eq!(v.value, "/ipfs/bafyabc");
        assert_eq!(v.sequence, 7);
        assert_eq!(v.ttl, Duration::from_secs(60));
        assert_eq!(v.signature, SignatureKind::V2);
        // Protobuf round trip is byte-exact.
        assert_eq!(IpnsEntry::decode(&rec).unwrap().encode(), rec);
    }

    #[test]
    fn wrong_name_expired_and_tampered_records_fail() {
        let (key, name) = fresh();
        let (_, other) = fresh();
        let rec = create_record(&key, "/ipfs/x", 1, eol(), Duration::ZERO).unwrap();
        let opts = VerifyOptions::default();
        assert_eq!(
            verify_record(&other, &rec, &opts),
            Err(IpnsError::InvalidSignatureV2)
        );

        let late = VerifyOptions {
            now: Some(eol() + Duration::from_secs(10)),
            ..Default::default()
        };
        assert!(matches!(
            verify_record(&name, &rec, &late),
            Err(IpnsError::Expired(_))
        ));

        let mut entry = IpnsEntry::decode(&rec).unwrap();
        entry.sequence = Some(2);
        assert_eq!(
            verify_record(&name, &entry.encode(), &opts),
            Err(IpnsError::FieldMismatch("sequence"))
        );

        let mut entry = IpnsEntry::decode(&rec).unwrap();
        let data = entry.data.as_mut().unwrap();
        let last = data.len() - 1;
        data[last] ^= 1;
        assert_eq!(
            verify_record(&name, &entry.encode(), &opts),
            Err(IpnsError::InvalidSignatureV2)
        );
    }

    #[test]
    fn v1_only_needs_the_option() {
        let (key, name) = fresh();
        let rec = create_record(&key, "/ipfs/y", 3, eol(), Duration::ZERO).unwrap();
        let mut entry = IpnsEntry::decode(&rec).unwrap();
        entry.signature_v2 = None;
        entry.data = None;
        let v1 = entry.encode();
        assert_eq!(
            verify_record(&name, &v1, &VerifyOptions::default()),
            Err(IpnsError::MissingSignatureV2)
        );
        let opts = VerifyOptions {
            allow_v1_only: true,
            ..Default::default()
        };
        let v = verify_record(&name, &v1, &opts).unwrap();
        assert_eq!((v.value.as_str(), v.sequence), ("/ipfs/y", 3));
        assert_eq!(v.signature, SignatureKind::V1Only);
        entry.value = Some(b"/ipfs/z".to_vec());
        assert_eq!(
            verify_record(&name, &entry.encode(), &opts),
            Err(IpnsError::InvalidSignatureV1)
        );
    }

    #[test]
    fn malformed_protobuf_is_rejected() {
        let (_, name) = fresh();
        let opts = VerifyOptions::default();
        for bad in [
            &[0x0a, 0x05, 1][..],
            &[0x28][..],
            &[0x6d, 1, 2][..],
            &[0xff; 11][..],
        ] {
            assert!(
                matches!(
                    verify_record(&name, bad, &opts),
                    Err(IpnsError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            verify_record(&name, &vec![0; MAX_RECORD_SIZE + 1], &opts),
            Err(IpnsError::TooLarge(_))
        ));
    }
}
