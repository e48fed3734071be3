-- As-of views: everything a build for ${as_of} may see, and nothing else.
--
-- An event belongs to the build when its time is before ${cutoff}, the first
-- instant of the business day after ${as_of}, whatever else is in the lake.
-- `dt` is the event's business date, set at ingest with the lake's calendar:
-- it only prunes files here, and gives each event its `days_ago`
-- (0 = the as-of date), so an N-day window is `days_ago < N`. (days_ago
-- is computed from epoch seconds: DataFusion 55's pruning cannot compare
-- the Duration that DATE - DATE yields with integer bounds.)

CREATE VIEW build.customers AS
SELECT *
FROM bronze.customers
WHERE updated_at < ${cutoff};

CREATE VIEW build.transactions AS
SELECT t.txn_id,
       t.customer_id,
       t.card_id,
       t.ts,
       t.dt AS bdate,
       CAST((EXTRACT(EPOCH FROM ${as_of}) - EXTRACT(EPOCH FROM t.dt)) / 86400 AS BIGINT) AS days_ago,
       t.amount,
       t.currency,
       t.amount * fx.cny_per_unit AS amount_cny,
       t.mcc,
       COALESCE(m.category, 'other') AS category,
       t.merchant_id,
       t.channel,
       t.country,
       t.status
FROM bronze.transactions t
LEFT JOIN ref.fx_rates fx ON fx.currency = t.currency
LEFT JOIN ref.mcc_categories m ON m.mcc = t.mcc
WHERE t.ts < ${cutoff} AND t.dt <= ${next_day};

CREATE VIEW build.device_events AS
SELECT event_id,
       ts,
       dt AS bdate,
       CAST((EXTRACT(EPOCH FROM ${as_of}) - EXTRACT(EPOCH FROM dt)) / 86400 AS BIGINT) AS days_ago,
       device_id,
       customer_id,
       event_type,
       os,
       app_version,
       geo_country,
       rooted
FROM bronze.device_events
WHERE ts < ${cutoff} AND dt <= ${next_day};

-- A profile is known by a pseudonymous key, platform:sha256(handle): the
-- handle itself is PII and stays in bronze.
CREATE VIEW build.social_profiles AS
SELECT platform,
       platform || ':' || sha256_hex(handle) AS profile_key,
       phone_sha256,
       email_sha256,
       customer_id,
       observed_at,
       CAST((EXTRACT(EPOCH FROM ${as_of}) - EXTRACT(EPOCH FROM dt)) / 86400 AS BIGINT) AS days_ago,
       followers,
       following,
       posts_30d,
       engagement_rate,
       interests,
       sentiment
FROM bronze.social_profiles
WHERE observed_at < ${cutoff} AND dt <= ${next_day};

-- An offer sent before the cutoff is known; its opening or acceptance only
-- once it has happened.
CREATE VIEW build.offer_events AS
SELECT offer_event_id,
       customer_id,
       offer_id,
       channel,
       sent_at,
       CAST((EXTRACT(EPOCH FROM ${as_of}) - EXTRACT(EPOCH FROM dt)) / 86400 AS BIGINT) AS days_ago,
       CASE WHEN opened_at < ${cutoff} THEN opened_at END AS opened_at,
       CASE WHEN accepted_at < ${cutoff} THEN accepted_at END AS accepted_at
FROM bronze.offer_events
WHERE sent_at < ${cutoff} AND dt <= ${next_day};
