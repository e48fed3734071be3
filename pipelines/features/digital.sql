-- Devices and digital activity, from logged-in device events (those that
-- carry a customer_id). A device several persons log in on is shared: a
-- signal here, never a reason to merge them.
WITH events AS (
    SELECT d.*, COALESCE(u.persons, 1) AS persons
    FROM build.devices d
    LEFT JOIN build.device_users u ON u.device_id = d.device_id
)
SELECT unified_id,
       COUNT(DISTINCT device_id) FILTER (WHERE days_ago < 90) AS distinct_devices_90d,
       COUNT(DISTINCT device_id) FILTER (WHERE persons > 1) AS shared_devices,
       COUNT(DISTINCT device_id) FILTER (WHERE rooted AND days_ago < 90) AS rooted_devices_90d,
       COUNT(*) FILTER (WHERE event_type = 'login_failed' AND days_ago < 30) AS failed_logins_30d,
       COUNT(*) FILTER (WHERE event_type = 'login' AND days_ago < 30) AS logins_30d,
       COUNT(*) FILTER (WHERE event_type = 'app_open' AND days_ago < 30) AS app_opens_30d,
       COUNT(*) FILTER (WHERE event_type = 'payment_auth' AND days_ago < 30) AS payment_auths_30d,
       COUNT(*) FILTER (WHERE event_type = 'password_reset' AND days_ago < 90) AS password_resets_90d,
       COUNT(*) FILTER (WHERE event_type = 'device_bind' AND days_ago < 90) AS device_binds_90d,
       COUNT(DISTINCT bdate) FILTER (WHERE days_ago < 30) AS digital_active_days_30d,
       MIN(days_ago) FILTER (WHERE event_type = 'login') AS days_since_last_login,
       CAST(COUNT(*) FILTER (WHERE os = 'web' AND days_ago < 90) AS DOUBLE)
         / NULLIF(COUNT(*) FILTER (WHERE days_ago < 90), 0) AS web_share_90d,
       COUNT(*) FILTER (WHERE geo_country <> 'CN' AND days_ago < 90) AS foreign_geo_events_90d
FROM events
GROUP BY unified_id
