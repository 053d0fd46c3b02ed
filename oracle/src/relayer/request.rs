//! An `OracleRequest` log as the relayer keeps it, and the Chainlink CBOR request parameters.

use alloy::primitives::{Address, B256, Bytes, FixedBytes, U256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolCall;
use px_core::contracts::{Operator, StorageNFT};
use serde::{Deserialize, Serialize};

use crate::resolver::Answer;

/// A sync request read from an `OracleRequest` log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The Operator's request id.
    pub request_id: B256,
    /// The job (spec) id.
    pub spec_id: B256,
    /// The contract that sent the request.
    pub requester: Address,
    /// LINK paid.
    pub payment: U256,
    /// Where the answer goes.
    pub callback_addr: Address,
    /// The callback's selector.
    pub callback_function_id: FixedBytes<4>,
    /// Unix time after which the requester may cancel.
    pub cancel_expiration: U256,
    /// The token, from the CBOR parameters.
    pub token_id: U256,
    /// Block the log is in.
    pub block_number: u64,
    /// Hash of that block (to notice the log being reorged out).
    pub block_hash: B256,
    /// Transaction that emitted the log.
    pub tx_hash: B256,
}

/// Why a log is not a request this relayer answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// The log is not a well-formed `OracleRequest` or lacks block data (pending).
    #[error("malformed log: {0}")]
    Malformed(String),
    /// The spec id is not served.
    #[error("spec id {0} is not served")]
    Spec(B256),
    /// The requester is not allowed.
    #[error("requester {0} is not allowed")]
    Requester(Address),
    /// The callback is not StorageNFT's `fulfillSync`.
    #[error("callback {0}.{1} is not fulfillSync")]
    Callback(Address, FixedBytes<4>),
    /// The CBOR parameters lack a valid `tokenId`.
    #[error("request parameters: {0}")]
    Params(String),
}

impl Request {
    /// Reads a request from a log, checking it against the served spec ids and requesters.
    pub fn from_log(log: &Log, spec_ids: &[B256], requesters: &[Address]) -> Result<Self, Ignored> {
        let decoded = log
            .log_decode::<Operator::OracleRequest>()
            .map_err(|e| Ignored::Malformed(e.to_string()))?;
        let ev = &decoded.inner.data;
        let (Some(block_number), Some(block_hash), Some(tx_hash)) =
            (log.block_number, log.block_hash, log.transaction_hash)
        else {
            return Err(Ignored::Malformed("log without block data".into()));
        };
        if !spec_ids.contains(&ev.specId) {
            return Err(Ignored::Spec(ev.specId));
        }
        if !requesters.contains(&ev.requester) {
            return Err(Ignored::Requester(ev.requester));
        }
        if ev.callbackAddr != ev.requester
            || ev.callbackFunctionId != StorageNFT::fulfillSyncCall::SELECTOR
        {
            return Err(Ignored::Callback(ev.callbackAddr, ev.callbackFunctionId));
        }
        let token_id = cbor_token_id(&ev.data).map_err(Ignored::Params)?;
        Ok(Self {
            request_id: ev.requestId,
            spec_id: ev.specId,
            requester: ev.requester,
            payment: ev.payment,
            callback_addr: ev.callbackAddr,
            callback_function_id: ev.callbackFunctionId,
            cancel_expiration: ev.cancelExpiration,
            token_id,
            block_number,
            block_hash,
            tx_hash,
        })
    }

    /// Unix time at which the request expires (saturating).
    pub fn expiration(&self) -> u64 {
        u64::try_from(self.cancel_expiration).unwrap_or(u64::MAX)
    }

    /// Calldata of `Operator.fulfillOracleRequest2` answering this request with `answer`.
    pub fn fulfill_calldata(&self, answer: &Answer) -> Bytes {
        // `data` is what the Operator appends to the callback selector: exactly the ABI
        // encoding of fulfillSync's arguments.
        let call = StorageNFT::fulfillSyncCall {
            requestId: self.request_id,
            tokenId: self.token_id,
            status: answer.status,
            used: answer.used,
            fileCount: answer.file_count,
            seq: answer.seq,
            recordCid: answer.record_cid.clone(),
        }
        .abi_encode();
        let data = call[4..].to_vec();
        Operator::fulfillOracleRequest2Call {
            requestId: self.request_id,
            payment: self.payment,
            callbackAddress: self.callback_addr,
            callbackFunctionId: self.callback_function_id,
            expiration: self.cancel_expiration,
            data: data.into(),
        }
        .abi_encode()
        .into()
    }
}

/// Reads the `tokenId` parameter from Chainlink request data: CBOR key/value pairs without the
/// map header (the node wraps them in an indefinite-length map). Accepts an unsigned integer
/// or a positive bignum (tag 2), as `Chainlink.Request._addUint` writes them.
pub fn cbor_token_id(data: &[u8]) -> Result<U256, String> {
    let mut wrapped = Vec::with_capacity(data.len() + 2);
    wrapped.push(0xbf);
    wrapped.extend_from_slice(data);
    wrapped.push(0xff);
    let value: ciborium::Value =
        ciborium::from_reader(wrapped.as_slice()).map_err(|e| format!("not CBOR: {e}"))?;
    let ciborium::Value::Map(entries) = value else {
        return Err("not a CBOR map".into());
    };
    let v = entries
        .into_iter()
        .find_map(|(k, v)| matches!(&k, ciborium::Value::Text(t) if t == "tokenId").then_some(v))
        .ok_or("no tokenId parameter")?;
    match v {
        ciborium::Value::Integer(i) => {
            let i = u128::try_from(i).map_err(|_| "tokenId is negative".to_string())?;
            Ok(U256::from(i))
        }
        ciborium::Value::Tag(2, inner) => match *inner {
            ciborium::Value::Bytes(b) if b.len() <= 32 => Ok(U256::from_be_slice(&b)),
            _ => Err("tokenId bignum is malformed".into()),
        },
        _ => Err("tokenId is not an unsigned integer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `req._addUint("tokenId", n)` as Chainlink's CBOR library writes it.
    fn chainlink_uint(n: &[u8]) -> Vec<u8> {
        let mut out = vec![0x67];
        out.extend_from_slice(b"tokenId");
        out.extend_from_slice(n);
        out
    }

    #[test]
    fn reads_token_id_forms() {
        assert_eq!(
            cbor_token_id(&chainlink_uint(&[0x05])).unwrap(),
            U256::from(5)
        );
        assert_eq!(
            cbor_token_id(&chainlink_uint(&[0x18, 200])).unwrap(),
            U256::from(200)
        );
        assert_eq!(
            cbor_token_id(&chainlink_uint(&[0x1b, 0, 0, 0, 1, 0, 0, 0, 0])).unwrap(),
            U256::from(1u64 << 32)
        );
        // bignum 2^64
        let mut big = vec![0xc2, 0x49, 1];
        big.extend_from_slice(&[0; 8]);
        assert_eq!(
            cbor_token_id(&chainlink_uint(&big)).unwrap(),
            U256::from(1u128 << 64)
        );
        // other keys first
        let mut two = vec![0x63];
        two.extend_from_slice(b"foo");
        two.push(0x01);
        two.extend_from_slice(&chainlink_uint(&[0x07]));
        assert_eq!(cbor_token_id(&two).unwrap(), U256::from(7));
    }

    fn log(spec: B256, requester: Address, callback: Address, selector: FixedBytes<4>) -> Log {
        use alloy::sol_types::SolEvent;
        let ev = Operator::OracleRequest {
            specId: spec,
            requester,
            requestId: B256::repeat_byte(7),
            payment: U256::from(10),
            callbackAddr: callback,
            callbackFunctionId: selector,
            cancelExpiration: U256::from(1_000),
            dataVersion: U256::from(2),
            data: chainlink_uint(&[0x18, 42]).into(),
        };
        Log {
            inner: alloy::primitives::Log {
                address: Address::repeat_byte(1),
                data: ev.encode_log_data(),
            },
            block_number: Some(5),
            block_hash: Some(B256::repeat_byte(5)),
            transaction_hash: Some(B256::repeat_byte(6)),
            ..Default::default()
        }
    }

    #[test]
    fn filters_spec_requester_and_callback() {
        let spec = B256::repeat_byte(0xaa);
        let nft = Address::repeat_byte(0xbb);
        let sel = StorageNFT::fulfillSyncCall::SELECTOR.into();
        let r = Request::from_log(&log(spec, nft, nft, sel), &[spec], &[nft]).unwrap();
        assert_eq!(r.token_id, U256::from(42));
        assert_eq!(r.request_id, B256::repeat_byte(7));
        assert_eq!((r.block_number, r.expiration()), (5, 1_000));
        let other = B256::repeat_byte(0xcc);
        assert_eq!(
            Request::from_log(&log(other, nft, nft, sel), &[spec], &[nft]),
            Err(Ignored::Spec(other))
        );
        let stranger = Address::repeat_byte(0xdd);
        assert_eq!(
            Request::from_log(&log(spec, stranger, stranger, sel), &[spec], &[nft]),
            Err(Ignored::Requester(stranger))
        );
        assert!(matches!(
            Request::from_log(&log(spec, nft, stranger, sel), &[spec], &[nft]),
            Err(Ignored::Callback(..))
        ));
        assert!(matches!(
            Request::from_log(
                &log(spec, nft, nft, FixedBytes([1, 2, 3, 4])),
                &[spec],
                &[nft]
            ),
            Err(Ignored::Callback(..))
        ));
        let mut pending = log(spec, nft, nft, sel);
        pending.block_hash = None;
        assert!(matches!(
            Request::from_log(&pending, &[spec], &[nft]),
            Err(Ignored::Malformed(_))
        ));
    }

    #[test]
    fn fulfill_data_starts_with_the_request_id() {
        use alloy::sol_types::SolCall;
        let spec = B256::repeat_byte(0xaa);
        let nft = Address::repeat_byte(0xbb);
        let sel = StorageNFT::fulfillSyncCall::SELECTOR.into();
        let r = Request::from_log(&log(spec, nft, nft, sel), &[spec], &[nft]).unwrap();
        let answer = Answer {
            token_id: r.token_id,
            status: 0,
            used: 9,
            file_count: 2,
            seq: 3,
            record_cid: Bytes::from(vec![1, 2, 3]),
            reason: None,
        };
        let call =
            Operator::fulfillOracleRequest2Call::abi_decode(&r.fulfill_calldata(&answer)).unwrap();
        assert_eq!(&call.data[..32], r.request_id.as_slice());
        assert_eq!(call.expiration, U256::from(1_000));
        let mut inner = StorageNFT::fulfillSyncCall::SELECTOR.to_vec();
        inner.extend_from_slice(&call.data);
        let sync = StorageNFT::fulfillSyncCall::abi_decode(&inner).unwrap();
        assert_eq!(
            (sync.tokenId, sync.used, sync.fileCount, sync.seq),
            (U256::from(42), 9, 2, 3)
        );
        assert_eq!(sync.recordCid.to_vec(), vec![1, 2, 3]);
    }

    #[test]
    fn rejects_bad_params() {
        assert!(cbor_token_id(&[]).is_err());
        assert!(cbor_token_id(&chainlink_uint(&[0x20])).is_err()); // -1
        let mut text = vec![0x67];
        text.extend_from_slice(b"tokenId");
        text.extend_from_slice(&[0x61, b'1']);
        assert!(cbor_token_id(&text).is_err());
        assert!(cbor_token_id(&[0xff, 0x00]).is_err());
    }
}
