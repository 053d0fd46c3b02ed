//! Moving a token to another storage node (`StorageNFT.rebindKey`).

use alloy::primitives::U256;
use alloy::providers::Provider;
use alloy::signers::Signer;
use px_core::api;
use px_core::contracts::StorageNFT;

use crate::client::Client;
use crate::error::{Error, Result};

/// The outcome of [`Client::move_to_node`].
pub struct MovedToken<P, S> {
    /// A client for the same wallet and deployment, talking to the new node.
    pub client: Client<P, S>,
    /// The signed rebinding the new node gave (its key, the files it took over).
    pub rebinding: api::KeyRebinding,
    /// The usage record the new node published under its key after the move.
    pub usage: api::Usage,
}

impl<P, S> std::fmt::Debug for MovedToken<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MovedToken")
            .field("rebinding", &self.rebinding)
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}

impl<P, S> Client<P, S>
where
    P: Provider + Clone,
    S: Signer + Send + Sync + Clone,
{
    /// Moves `token_id` to the storage node at `new_node_url`: the new node takes the token's
    /// files over and signs a key rebinding ([`Client::rebind_offer`]), this wallet submits it
    /// with `rebindKey`, then the new node publishes a usage record under its key (sequence =
    /// the on-chain one + 1), so the holder syncs, uploads and downloads through it. The old
    /// node refuses further uploads for the token.
    ///
    /// # Errors
    /// [`Error::Node`] when the new node refuses (for example `not_owner`, or a token it cannot
    /// take over), [`Error::Reverted`] when `rebindKey` reverts (a sync still pending, an
    /// expired signature), [`Error::NodeMismatch`] for a rebinding of another token or
    /// deployment.
    pub async fn move_to_node(
        &self,
        token_id: u64,
        new_node_url: &str,
    ) -> Result<MovedToken<P, S>> {
        let inner = &self.inner;
        let client = Client::builder(
            inner.provider.clone(),
            inner.signer.clone(),
            inner.deployment.clone(),
        )
        .node(new_node_url)
        .http_client(inner.http.clone())
        .poll_interval(inner.poll)
        .build()
        .await?;
        let rebinding = client.rebind_offer(token_id).await?;
        let nft = StorageNFT::new(inner.deployment.storage_nft, &inner.provider);
        let receipt = nft
            .rebindKey(
                U256::from(token_id),
                rebinding.ipns_name.clone(),
                U256::from(rebinding.deadline),
                rebinding.signature.clone(),
            )
            .send()
            .await?
            .get_receipt()
            .await?;
        if !receipt.status() {
            return Err(Error::TransactionFailed {
                tx_hash: receipt.transaction_hash,
            });
        }
        let usage = client.refresh(token_id).await?;
        Ok(MovedToken {
            client,
            rebinding,
            usage,
        })
    }
}
