//! The storage seam: where durable queues and retained topics keep their messages.
