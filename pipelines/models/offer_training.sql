-- Labelled offers as of ${as_of}, each with what was known the day before
-- it was sent.
--
-- * Label: accepted within 30 days of sent_at. Only offers whose 30 days
--   ended by ${cutoff} are labelled (a younger offer's outcome is not
--   known yet, and counting it as refused would bias the model).
-- * Features: the feature snapshot of the latest built day at or before
--   the business day before the offer was sent, at most ${oldest_lag}
--   before the day it was sent (point in time: never a snapshot of the day
--   it was sent or later). Identity comes from the same snapshot, so a
--   customer_id resolves to the person those features describe.
-- * A delivery of the same offer_event_id more than once keeps its
--   earliest sending and acceptance.
WITH offers AS (
  SELECT offer_event_id,
         MIN(customer_id) AS customer_id,
         MIN(offer_id) AS offer_id,
         MIN(channel) AS channel,
         MIN(sent_at) AS sent_at,
         MIN(dt) AS sent_date,
         MIN(accepted_at) AS accepted_at
  FROM bronze.offer_events
  WHERE sent_at < ${cutoff}
  GROUP BY offer_event_id
),
matured AS (
  SELECT *,
         CAST(accepted_at IS NOT NULL AND accepted_at >= sent_at
              AND accepted_at < sent_at + INTERVAL '30 days' AS INT) AS label
  FROM offers
  WHERE sent_at + INTERVAL '30 days' <= ${cutoff}
),
snapshots (as_of) AS (
  ${snapshots}
),
picked AS (
  SELECT d.sent_date, MAX(s.as_of) AS snapshot
  FROM (SELECT DISTINCT sent_date FROM matured) d
  JOIN snapshots s
    ON s.as_of < d.sent_date
   AND s.as_of >= d.sent_date - ${oldest_lag}
  GROUP BY d.sent_date
)
SELECT m.offer_event_id,
       m.customer_id,
       i.unified_id,
       m.offer_id,
       m.channel,
       m.sent_at,
       m.sent_date,
       p.snapshot,
       m.label
FROM matured m
LEFT JOIN picked p ON p.sent_date = m.sent_date
LEFT JOIN silver.identity_map i
  ON i.as_of = p.snapshot AND i.source = 'customers' AND i.source_key = m.customer_id
