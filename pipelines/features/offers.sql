-- Card-offer history known as of D: offers sent before the cutoff, and
-- only the openings and acceptances that had already happened.
SELECT unified_id,
       COUNT(*) FILTER (WHERE days_ago < 90) AS offers_received_90d,
       COUNT(*) FILTER (WHERE days_ago < 90 AND opened_at IS NOT NULL) AS offers_opened_90d,
       COUNT(*) FILTER (WHERE accepted_at IS NOT NULL) AS offers_accepted,
       CAST(COUNT(*) FILTER (WHERE days_ago < 90 AND opened_at IS NOT NULL) AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE days_ago < 90), 0) AS offer_open_rate_90d,
       MIN(days_ago) AS days_since_last_offer
FROM build.offers
GROUP BY unified_id
