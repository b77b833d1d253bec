//! Properties over arbitrary orders, losses and delays of replica answers.
