-- Spend share by merchant category over the 90-day window: the CNY spend
-- of the purchases in each category (ref.mcc_categories) over all
-- purchase spend, and the category with the most spend.
WITH spend AS (
    SELECT unified_id, category, SUM(amount_cny) AS cny
    FROM build.txn
    WHERE status = 'approved' AND amount > 0 AND days_ago < 90
    GROUP BY unified_id, category
),
totals AS (
    SELECT unified_id,
           SUM(cny) AS total,
           SUM(cny) FILTER (WHERE category = 'grocery') AS grocery,
           SUM(cny) FILTER (WHERE category = 'dining') AS dining,
           SUM(cny) FILTER (WHERE category = 'travel') AS travel,
           SUM(cny) FILTER (WHERE category = 'retail') AS retail,
           SUM(cny) FILTER (WHERE category = 'digital') AS digital,
           SUM(cny) FILTER (WHERE category = 'transport') AS transport,
           SUM(cny) FILTER (WHERE category = 'entertainment') AS entertainment,
           MAX(cny) AS top_cny
    FROM spend
    GROUP BY unified_id
),
leader AS (
    SELECT s.unified_id, MIN(s.category) AS category
    FROM spend s
    JOIN totals t ON t.unified_id = s.unified_id AND s.cny = t.top_cny
    GROUP BY s.unified_id
)
SELECT t.unified_id,
       CAST(COALESCE(grocery, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS grocery_share_90d,
       CAST(COALESCE(dining, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS dining_share_90d,
       CAST(COALESCE(travel, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS travel_share_90d,
       CAST(COALESCE(retail, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS retail_share_90d,
       CAST(COALESCE(digital, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS digital_share_90d,
       CAST(COALESCE(transport, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS transport_share_90d,
       CAST(COALESCE(entertainment, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS entertainment_share_90d,
       leader.category AS top_category_90d
FROM totals t
LEFT JOIN leader ON leader.unified_id = t.unified_id
