//! Requests outside the workload: [`Sim::call`] and its get, put and delete helpers.

use super::{workload, Sim, DIRECT_CLIENT};
use crate::message::{ClientReply, ClientRequest};
use crate::types::{Millis, NodeId};

impl Sim {
    /// Sends one request to `node` outside the workload and runs the simulation until its reply
    /// arrives or `max` ms passed (`None`). The operation is recorded in the history (client
    /// [`DIRECT_CLIENT`]) and checked like any other; put values should come from
    /// [`workload::value_for`] of [`Sim::next_op_id`] (the [`Sim::put`] helper does this). A put
    /// or delete whose context is the one the latest such get returned counts as made from that
    /// get (it supersedes the values the get read), as a workload client's would.
    pub fn call(
        &mut self,
        node: NodeId,
        request: ClientRequest,
        max: Millis,
    ) -> Option<ClientReply> {
        let kind = match &request {
            ClientRequest::Get { .. } => workload::OpKind::Get,
            ClientRequest::Put { .. } => workload::OpKind::Put,
            ClientRequest::Delete { .. } => workload::OpKind::Delete,
        };
        let (sent_context, options) = match &request {
            ClientRequest::Put {
                context, options, ..
            }
            | ClientRequest::Delete {
                context, options, ..
            } => (context.clone(), *options),
            ClientRequest::Get { options, .. } => (Vec::new(), *options),
        };
        let context_from = if sent_context.is_empty() {
            None
        } else {
            self.history
                .ops()
                .filter(|o| {
                    o.kind == workload::OpKind::Get && o.is_ok() && o.context == sent_context
                })
                .map(|o| o.id)
                .last()
        };
        let id = self.history.invoke(workload::Op {
            id: 0,
            client: DIRECT_CLIENT,
            node,
            kind,
            key: workload::key_index(request.key()).unwrap_or(u32::MAX),
            options,
            invoke: self.now,
            complete: None,
            outcome: workload::Outcome::Pending,
            read: Vec::new(),
            context: Vec::new(),
            sent_context,
            context_from,
            replicas: Vec::new(),
            phantoms: Vec::new(),
        });
        self.send_request(node, id, request);
        let deadline = self.now + max.saturating_mul(1000);
        loop {
            if let Some(reply) = self.direct.remove(&id) {
                return Some(reply);
            }
            if self.queue.peek_time().is_none_or(|t| t > deadline) {
                break;
            }
            self.step();
        }
        self.now = self.now.max(deadline);
        self.finish(DIRECT_CLIENT, id, None);
        None
    }

    /// The id the next operation gets.
    pub fn next_op_id(&self) -> u64 {
        self.history.next_id()
    }

    /// [`Sim::call`] with a put of key index `key`, a unique value and `context`.
    pub fn put(&mut self, node: NodeId, key: u32, context: Vec<u8>) -> Option<ClientReply> {
        let value = workload::value_for(self.next_op_id(), self.config.workload.value_size);
        let request = ClientRequest::Put {
            key: workload::key_bytes(key),
            value,
            context,
            options: Default::default(),
            content_type: None,
        };
        self.call(node, request, self.config.workload.client_timeout)
    }

    /// [`Sim::call`] with a get of key index `key`.
    pub fn get(&mut self, node: NodeId, key: u32) -> Option<ClientReply> {
        let request = ClientRequest::Get {
            key: workload::key_bytes(key),
            options: Default::default(),
        };
        self.call(node, request, self.config.workload.client_timeout)
    }

    /// [`Sim::call`] with a delete of key index `key` with `context`.
    pub fn delete(&mut self, node: NodeId, key: u32, context: Vec<u8>) -> Option<ClientReply> {
        let request = ClientRequest::Delete {
            key: workload::key_bytes(key),
            context,
            options: Default::default(),
        };
        self.call(node, request, self.config.workload.client_timeout)
    }
}
