//! Open files and what they refer to: the descriptor table, pipes and
//! socket pairs, eventfds, timerfds and epoll instances.
pub mod epoll;
pub mod file;
pub mod pipe;
pub mod ready;

#[cfg(test)]
mod tests;
