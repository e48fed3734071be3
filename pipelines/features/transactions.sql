-- Card spending per person: recency, frequency and monetary value over
-- 7/30/90 business days, channel mix, foreign and online share, refunds,
-- declines and reversals. One pass over the as-of transactions.
--
-- A purchase is an approved transaction with amount > 0; amounts are CNY.
SELECT unified_id,
       COUNT(*) FILTER (WHERE purchase AND days_ago < 7) AS txn_count_7d,
       COUNT(*) FILTER (WHERE purchase AND days_ago < 30) AS txn_count_30d,
       COUNT(*) FILTER (WHERE purchase AND days_ago < 90) AS txn_count_90d,
       ROUND(SUM(amount_cny) FILTER (WHERE purchase AND days_ago < 7), 2) AS spend_7d,
       ROUND(SUM(amount_cny) FILTER (WHERE purchase AND days_ago < 30), 2) AS spend_30d,
       ROUND(SUM(amount_cny) FILTER (WHERE purchase AND days_ago < 90), 2) AS spend_90d,
       ROUND(AVG(amount_cny) FILTER (WHERE purchase AND days_ago < 30), 2) AS avg_ticket_30d,
       ROUND(AVG(amount_cny) FILTER (WHERE purchase AND days_ago < 90), 2) AS avg_ticket_90d,
       ROUND(MAX(amount_cny) FILTER (WHERE purchase AND days_ago < 90), 2) AS max_ticket_90d,
       MIN(days_ago) FILTER (WHERE status = 'approved') AS days_since_last_txn,
       COUNT(DISTINCT bdate) FILTER (WHERE purchase AND days_ago < 30) AS active_days_30d,
       COUNT(DISTINCT merchant_id) FILTER (WHERE purchase AND days_ago < 90) AS distinct_merchants_90d,
       CAST(COUNT(*) FILTER (WHERE purchase AND days_ago < 90 AND channel = 'pos') AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE purchase AND days_ago < 90), 0) AS pos_share_90d,
       CAST(COUNT(*) FILTER (WHERE purchase AND days_ago < 90 AND channel IN ('ecom', 'mobile')) AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE purchase AND days_ago < 90), 0) AS online_share_90d,
       CAST(COUNT(*) FILTER (WHERE purchase AND days_ago < 90 AND country <> 'CN') AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE purchase AND days_ago < 90), 0) AS foreign_share_90d,
       ROUND(SUM(amount_cny) FILTER (WHERE purchase AND days_ago < 90 AND country <> 'CN'), 2) AS foreign_spend_90d,
       CAST(COUNT(*) FILTER (WHERE purchase AND days_ago < 90 AND currency <> 'CNY') AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE purchase AND days_ago < 90), 0) AS foreign_currency_share_90d,
       COUNT(*) FILTER (WHERE status = 'approved' AND days_ago < 90 AND channel = 'atm') AS atm_count_90d,
       COUNT(*) FILTER (WHERE status = 'approved' AND days_ago < 90 AND channel = 'transfer') AS transfer_count_90d,
       COUNT(*) FILTER (WHERE status = 'approved' AND amount < 0 AND days_ago < 90) AS refund_count_90d,
       ROUND(-SUM(amount_cny) FILTER (WHERE status = 'approved' AND amount < 0 AND days_ago < 90), 2) AS refund_amount_90d,
       COUNT(*) FILTER (WHERE status = 'declined' AND days_ago < 30) AS decline_count_30d,
       CAST(COUNT(*) FILTER (WHERE status = 'declined' AND days_ago < 30) AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE days_ago < 30), 0) AS decline_rate_30d,
       COUNT(*) FILTER (WHERE status = 'reversed' AND days_ago < 90) AS reversal_count_90d
FROM (SELECT *, status = 'approved' AND amount > 0 AS purchase FROM build.txn) t
GROUP BY unified_id
