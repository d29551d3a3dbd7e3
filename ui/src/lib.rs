//! Switchyard's dashboard: draws broker state and sends operator commands.
