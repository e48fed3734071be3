-- Social reach and interests from consented profiles linked to the person:
-- the latest observation (as of D) of each profile, summed over profiles.
WITH ranked AS (
    SELECT s.*,
           ROW_NUMBER() OVER (PARTITION BY unified_id, profile_key ORDER BY observed_at DESC) AS recency
    FROM build.social s
),
latest AS (
    SELECT * FROM ranked WHERE recency = 1
),
interests AS (
    SELECT unified_id, array_sort(array_agg(interest)) AS interests
    FROM (
        SELECT unified_id, interest
        FROM (SELECT unified_id, unnest(interests) AS interest FROM latest) listed
        WHERE interest IS NOT NULL
        GROUP BY unified_id, interest
    ) distinct_interests
    GROUP BY unified_id
),
reach AS (
    SELECT unified_id,
           COUNT(*) AS social_profiles,
           SUM(followers) AS social_followers,
           SUM(following) AS social_following,
           SUM(posts_30d) AS social_posts_30d,
           MAX(engagement_rate) AS social_engagement_rate,
           AVG(sentiment) AS social_sentiment,
           MIN(days_ago) AS days_since_social_observation
    FROM latest
    GROUP BY unified_id
)
SELECT r.*,
       COALESCE(array_length(i.interests), 0) AS social_interest_count,
       i.interests AS social_interests
FROM reach r
LEFT JOIN interests i ON i.unified_id = r.unified_id
