-- Velocity: how bursty spending is. Daily purchase counts and spend over
-- the 30-day window, and the last week's pace against the 90-day pace.
WITH daily AS (
    SELECT unified_id,
           days_ago,
           COUNT(*) AS txns,
           SUM(amount_cny) AS cny
    FROM build.txn
    WHERE status = 'approved' AND amount > 0 AND days_ago < 90
    GROUP BY unified_id, days_ago
)
SELECT unified_id,
       MAX(txns) FILTER (WHERE days_ago < 30) AS max_daily_txn_30d,
       ROUND(MAX(cny) FILTER (WHERE days_ago < 30), 2) AS max_daily_spend_30d,
       COALESCE(SUM(txns) FILTER (WHERE days_ago = 0), 0) AS txn_count_1d,
       CAST(COALESCE(SUM(cny) FILTER (WHERE days_ago < 7), 0) AS DOUBLE) * 90.0
         / (7.0 * CAST(NULLIF(SUM(cny), 0) AS DOUBLE)) AS spend_pace_7d_vs_90d
FROM daily
GROUP BY unified_id
