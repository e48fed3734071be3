-- Card spending per person: recency, frequency and monetary value over
-- 7/30/90 business days, channel mix, foreign and online share, refunds,
-- declines and reversals. One pass over the as-of transactions.
--
-- A purchase is an approved transaction with amount > 0; amounts are CNY.
--
-- Each condition is computed once per row (the flags below) and the
-- aggregates filter on the flags: an engine evaluates a FILTER clause per
-- aggregate, and most conditions here are shared by several.
WITH txn AS (
    SELECT unified_id,
           bdate,
           merchant_id,
           days_ago,
           amount_cny,
           status = 'approved' AS approved,
           status = 'approved' AND amount > 0 AND days_ago < 7 AS p7,
           status = 'approved' AND amount > 0 AND days_ago < 30 AS p30,
           status = 'approved' AND amount > 0 AND days_ago < 90 AS p90,
           status = 'approved' AND days_ago < 90 AS a90,
           channel,
           country <> 'CN' AS foreign_country,
           currency <> 'CNY' AS foreign_currency,
           amount < 0 AS negative,
           status
    FROM build.txn
),
spending AS (
SELECT unified_id,
       COUNT(*) FILTER (WHERE p7) AS txn_count_7d,
       COUNT(*) FILTER (WHERE p30) AS txn_count_30d,
       COUNT(*) FILTER (WHERE p90) AS txn_count_90d,
       ROUND(SUM(amount_cny) FILTER (WHERE p7), 2) AS spend_7d,
       ROUND(SUM(amount_cny) FILTER (WHERE p30), 2) AS spend_30d,
       ROUND(SUM(amount_cny) FILTER (WHERE p90), 2) AS spend_90d,
       ROUND(AVG(amount_cny) FILTER (WHERE p30), 2) AS avg_ticket_30d,
       ROUND(AVG(amount_cny) FILTER (WHERE p90), 2) AS avg_ticket_90d,
       ROUND(MAX(amount_cny) FILTER (WHERE p90), 2) AS max_ticket_90d,
       MIN(days_ago) FILTER (WHERE approved) AS days_since_last_txn,
       CAST(COUNT(*) FILTER (WHERE p90 AND channel = 'pos') AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE p90), 0) AS pos_share_90d,
       CAST(COUNT(*) FILTER (WHERE p90 AND channel IN ('ecom', 'mobile')) AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE p90), 0) AS online_share_90d,
       CAST(COUNT(*) FILTER (WHERE p90 AND foreign_country) AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE p90), 0) AS foreign_share_90d,
       ROUND(SUM(amount_cny) FILTER (WHERE p90 AND foreign_country), 2) AS foreign_spend_90d,
       CAST(COUNT(*) FILTER (WHERE p90 AND foreign_currency) AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE p90), 0) AS foreign_currency_share_90d,
       COUNT(*) FILTER (WHERE a90 AND channel = 'atm') AS atm_count_90d,
       COUNT(*) FILTER (WHERE a90 AND channel = 'transfer') AS transfer_count_90d,
       COUNT(*) FILTER (WHERE a90 AND negative) AS refund_count_90d,
       ROUND(-SUM(amount_cny) FILTER (WHERE a90 AND negative), 2) AS refund_amount_90d,
       COUNT(*) FILTER (WHERE status = 'declined' AND days_ago < 30) AS decline_count_30d,
       CAST(COUNT(*) FILTER (WHERE status = 'declined' AND days_ago < 30) AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE days_ago < 30), 0) AS decline_rate_30d,
       COUNT(*) FILTER (WHERE status = 'reversed' AND days_ago < 90) AS reversal_count_90d
FROM txn
GROUP BY unified_id
),
-- Distinct counts as two-level aggregates: a hash set per person would
-- hold millions of sets at once.
active_days AS (
    SELECT unified_id, COUNT(*) AS active_days_30d
    FROM (SELECT unified_id, bdate FROM txn
          WHERE p30
          GROUP BY unified_id, bdate) d
    GROUP BY unified_id
),
merchants AS (
    SELECT unified_id, COUNT(*) AS distinct_merchants_90d
    FROM (SELECT unified_id, merchant_id FROM txn
          WHERE p90 AND merchant_id IS NOT NULL
          GROUP BY unified_id, merchant_id) m
    GROUP BY unified_id
)
SELECT s.*,
       COALESCE(a.active_days_30d, 0) AS active_days_30d,
       COALESCE(m.distinct_merchants_90d, 0) AS distinct_merchants_90d
FROM spending s
LEFT JOIN active_days a ON a.unified_id = s.unified_id
LEFT JOIN merchants m ON m.unified_id = s.unified_id
