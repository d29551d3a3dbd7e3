//! Query filters on subscriptions (`data.amount > 5 AND region = 'eu'`).
