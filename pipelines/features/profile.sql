-- Who the person is at the bank, from the golden record (build.customer_360).
SELECT unified_id,
       tenure_days,
       age_years,
       income_band,
       kyc_level,
       segment,
       marketing_opt_in,
       product_count,
       array_to_string(products, ';') LIKE '%credit%'
         OR array_to_string(products, ';') LIKE '%cc\_%' ESCAPE '\' AS has_credit_card,
       array_to_string(products, ';') LIKE '%mortgage%' AS has_mortgage,
       array_to_string(products, ';') LIKE '%wealth%' AS has_wealth,
       array_length(customer_ids) AS customer_id_count
FROM build.customer_360
