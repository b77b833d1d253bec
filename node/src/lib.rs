//! `dynamo-node`: not implemented yet. See the workspace README for the plan.
