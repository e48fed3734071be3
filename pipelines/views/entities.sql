-- Entity views: the as-of events of each source keyed by the person they
-- belong to (build.identity_map, resolved just before these are created).
-- Events of customer_ids the core-banking extract does not (yet) know
-- belong to nobody and are left out.

CREATE VIEW build.customer_links AS
SELECT source_key AS customer_id, unified_id
FROM build.identity_map
WHERE source = 'customers';

-- build.txn and build.devices are what the feature families scan: a build
-- computes each once (into scratch files) before the families run, so they
-- carry the columns features read, not every column of the source (the
-- as-of views build.transactions and build.device_events have them all).
CREATE VIEW build.txn AS
SELECT l.unified_id,
       t.bdate,
       t.days_ago,
       t.amount,
       t.currency,
       t.amount_cny,
       t.mcc,
       t.category,
       t.merchant_id,
       t.channel,
       t.country,
       t.status
FROM build.transactions t
JOIN build.customer_links l ON l.customer_id = t.customer_id;

-- Logged-in device events (a customer_id is only present after login).
CREATE VIEW build.devices AS
SELECT l.unified_id,
       d.bdate,
       d.days_ago,
       d.device_id,
       d.event_type,
       d.os,
       d.geo_country,
       d.rooted
FROM build.device_events d
JOIN build.customer_links l ON l.customer_id = d.customer_id;

-- How many persons use each device (2 or more: a shared device).
CREATE VIEW build.device_users AS
SELECT source_key AS device_id, COUNT(*) AS persons
FROM build.identity_map
WHERE source = 'device_events'
GROUP BY source_key;

CREATE VIEW build.social AS
SELECT i.unified_id, s.*
FROM build.social_profiles s
JOIN build.identity_map i ON i.source = 'social_profiles' AND i.source_key = s.profile_key;

CREATE VIEW build.offers AS
SELECT l.unified_id, o.*
FROM build.offer_events o
JOIN build.customer_links l ON l.customer_id = o.customer_id;
