-- E-mail addresses are unique whatever their case (ASCII letters): "Ada@Example.com" and
-- "ada@example.com" are one user.
CREATE UNIQUE INDEX users_email_nocase ON users (email COLLATE NOCASE);
