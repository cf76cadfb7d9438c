"""The policy evaluator, pure: parsing (errors name the statement and member), IAM's
evaluation (default deny, an explicit deny wins), wildcards, tag conditions, managed policies."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.access import Principal, authorize, principal_from_wire, principal_to_wire
from orchestrator.errors import PermissionDeniedError, ValidationError
from orchestrator.iam import (
    ACTIONS,
    ALLOW,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    MANAGED,
    OWNER_TAG,
    PolicySet,
    parse_policy,
    policy_set,
)

ARN = "arn:aws:sagemaker:us-east-1:000000000000"
JOB = f"{ARN}:training-job/job-1"
EP = f"{ARN}:endpoint/ep-1"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def deny(action: Any, resource: Any = "*", **more: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **more}


def decide(
    policy: dict[str, Any], action: str, resource: str, tags: Any = None, user: str = "alice"
) -> str:
    return PolicySet([parse_policy(policy)], user).decide(action, resource, tags)


# --- parsing --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("statement", "field", "words"),
    [
        (allow("sagemaker:CreateTrainingJob", "arn:aws:sagemaker:us-east-1:endpoint/x"),
         "Statement[1].Resource[0]", "malformed ARN"),
        (allow("sagemaker:CreateTrainingJob", "endpoint/x"), "Statement[1].Resource[0]",
         "malformed ARN"),
        (allow("sagemaker:CreateTrainingJobs"), "Statement[1].Action[0]",
         "did you mean sagemaker:CreateTrainingJob"),
        (allow("sagemeker:CreateTrainingJob"), "Statement[1].Action[0]",
         "unknown service prefix 'sagemeker'"),
        (allow("sagemaker:Frobnicate*"), "Statement[1].Action[0]", "matches no action"),
        (allow("CreateTrainingJob"), "Statement[1].Action[0]", "is not SERVICE:ACTION"),
        (allow("*", Condition={"StringEqual": {"aws:ResourceTag/t": "a"}}),
         "Statement[1].Condition.StringEqual", "unknown condition operator"),
        (allow("*", Condition={"StringEquals": {"aws:SourceIp": "1.2.3.4"}}),
         "Statement[1].Condition.StringEquals.aws:SourceIp", "unsupported condition key"),
        ({"Effect": "Maybe", "Action": "*", "Resource": "*"}, "Statement[1].Effect",
         "'Allow' or 'Deny'"),
        ({"Effect": "Allow", "Resource": "*"}, "Statement[1].Action", "exactly one of"),
        ({"Effect": "Allow", "Action": "*"}, "Statement[1].Resource", "exactly one of"),
        ({**allow("*"), "Principal": "*"}, "Statement[1]", "unknown members ['Principal']"),
        (allow([]), "Statement[1].Action", "non-empty list"),
        (allow("*", "arn:aws:ec2:us-east-1:1:instance/i"), "Statement[1].Resource[0]",
         "unknown service 'ec2'"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_refused_naming_the_statement_and_member(
    statement: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as e:
        parse_policy(doc(allow("sagemaker:ListModels"), statement), where="PolicyDocument.")
    assert e.value.field == f"PolicyDocument.{field}"
    assert words in e.value.message


def test_a_bad_document_is_refused() -> None:
    for bad, words in (("{", "is not JSON"), ({"Version": "2020-01-01", "Statement": []},
                       "2012-10-17"), ({"Statement": []}, "non-empty"), ([], "an object")):  # fmt: skip
        with pytest.raises(ValidationError, match=words):
            parse_policy(bad)


def test_actions_are_case_insensitive_and_wildcards_expand_against_the_catalog() -> None:
    p = parse_policy(doc(allow(["SageMaker:describe*", "s3:Get*"])))
    (st,) = p.statements
    assert "sagemaker:DescribeTrainingJob" in st.actions and "s3:GetObject" in st.actions
    assert "sagemaker:CreateTrainingJob" not in st.actions
    assert all(a.startswith(("sagemaker:Describe", "s3:Get")) for a in st.actions)
    assert parse_policy(doc(allow("*"))).statements[0].actions == frozenset(ACTIONS)


# --- evaluation -----------------------------------------------------------------------------
def test_default_deny_and_an_explicit_deny_wins_over_an_allow() -> None:
    assert decide(doc(allow("sagemaker:ListModels")), "sagemaker:DescribeModel", "*") == (
        IMPLICIT_DENY
    )
    both = doc(allow("sagemaker:*"), deny("sagemaker:DeleteEndpoint", f"{ARN}:endpoint/prod-*"))
    assert decide(both, "sagemaker:DeleteEndpoint", f"{ARN}:endpoint/prod-a") == EXPLICIT_DENY
    assert decide(both, "sagemaker:DeleteEndpoint", f"{ARN}:endpoint/dev-a") == ALLOW
    # The deny wins whatever the order, and across policies.
    ps = PolicySet(
        [parse_policy(doc(deny("*", JOB))), parse_policy(MANAGED["AdministratorAccess"].document)],
        "alice",
    )
    assert ps.decide("sagemaker:StopTrainingJob", JOB) == EXPLICIT_DENY
    assert ps.decide("sagemaker:StopTrainingJob", f"{ARN}:training-job/other") == ALLOW


def test_wildcard_resources_and_sagemaker_arns_lower_cased() -> None:
    p = doc(
        allow(
            "sagemaker:InvokeEndpoint",
            [f"{ARN}:endpoint/Team-?", "arn:aws:sagemaker:*:*:endpoint/x*y"],
        )
    )
    assert decide(p, "sagemaker:InvokeEndpoint", f"{ARN}:endpoint/team-a") == ALLOW
    assert decide(p, "sagemaker:InvokeEndpoint", f"{ARN}:endpoint/team-ab") == IMPLICIT_DENY
    assert decide(p, "sagemaker:InvokeEndpoint", f"{ARN}:endpoint/x-1-y") == ALLOW
    assert decide(p, "sagemaker:InvokeEndpoint", f"{ARN}:endpoint/x-1-z") == IMPLICIT_DENY


def test_not_action_and_not_resource() -> None:
    p = doc(
        {"Effect": "Allow", "NotAction": "sagemaker:Delete*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::shared/*"},
    )
    assert decide(p, "sagemaker:CreateModel", "*") == ALLOW
    assert decide(p, "sagemaker:DeleteModel", f"{ARN}:model/m") == IMPLICIT_DENY
    assert decide(p, "s3:GetObject", "arn:aws:s3:::shared/a") == ALLOW
    assert decide(p, "s3:GetObject", "arn:aws:s3:::private/a") == EXPLICIT_DENY


def test_tag_conditions() -> None:
    team = {"StringEquals": {"aws:ResourceTag/team": ["vision", "nlp"]}}
    p = doc(allow("sagemaker:DescribeTrainingJob", Condition=team))
    assert decide(p, "sagemaker:DescribeTrainingJob", JOB, {"team": "nlp"}) == ALLOW
    assert decide(p, "sagemaker:DescribeTrainingJob", JOB, {"team": "ops"}) == IMPLICIT_DENY
    assert decide(p, "sagemaker:DescribeTrainingJob", JOB, {}) == IMPLICIT_DENY
    # sagemaker:ResourceTag is the same key; StringLike takes wildcards.
    like = doc(allow("*", Condition={"StringLike": {"sagemaker:ResourceTag/team": "vis*"}}))
    assert decide(like, "sagemaker:DescribeModel", JOB, {"team": "vision"}) == ALLOW
    # An absent key passes a negated operator (as IAM), fails a positive one unless IfExists.
    other = doc(deny("*", Condition={"StringNotEquals": {"aws:ResourceTag/team": "a"}}), allow("*"))
    assert decide(other, "sagemaker:DescribeModel", JOB, {}) == EXPLICIT_DENY
    assert decide(other, "sagemaker:DescribeModel", JOB, {"team": "a"}) == ALLOW
    exists = doc(allow("*", Condition={"StringEqualsIfExists": {"aws:ResourceTag/team": "a"}}))
    assert decide(exists, "sagemaker:DescribeModel", JOB, {}) == ALLOW
    assert decide(exists, "sagemaker:DescribeModel", JOB, {"team": "b"}) == IMPLICIT_DENY
    null = doc(allow("*", Condition={"Null": {"aws:ResourceTag/team": "true"}}))
    assert decide(null, "sagemaker:DescribeModel", JOB, {}) == ALLOW
    assert decide(null, "sagemaker:DescribeModel", JOB, {"team": "x"}) == IMPLICIT_DENY


def test_tags_are_read_only_when_a_condition_needs_them() -> None:
    calls: list[int] = []

    def tags() -> dict[str, str]:
        calls.append(1)
        return {"team": "a"}

    plain = doc(allow("sagemaker:DescribeModel"))
    assert decide(plain, "sagemaker:DescribeModel", JOB, tags) == ALLOW and not calls
    cond = doc(
        allow("sagemaker:DescribeModel", Condition={"StringEquals": {"aws:ResourceTag/team": "a"}})
    )
    assert decide(cond, "sagemaker:DescribeModel", JOB, tags) == ALLOW and calls == [1]
    ps = PolicySet([parse_policy(cond)], "alice")
    assert ps.needs_tags("sagemaker:DescribeModel") and not ps.needs_tags("sagemaker:ListModels")


def test_the_username_variable() -> None:
    p = doc(allow("orchestrator:CreateApiKey", "arn:aws:iam::*:user/${aws:username}"))
    assert decide(p, "orchestrator:CreateApiKey", "arn:aws:iam::1:user/alice") == ALLOW
    assert decide(p, "orchestrator:CreateApiKey", "arn:aws:iam::1:user/bob") == IMPLICIT_DENY


# --- managed policies and principals --------------------------------------------------------
def who(*names: str, user: str = "alice") -> Principal:
    return Principal("k1", user, "", policy_set([MANAGED[n] for n in names], user))


def test_read_only_reads_and_cannot_create() -> None:
    p = who("ReadOnly")
    authorize(p, "sagemaker:DescribeTrainingJob", JOB)
    authorize(p, "sagemaker:ListEndpoints", "*")
    for action in ("sagemaker:CreateTrainingJob", "sagemaker:DeleteEndpoint", "s3:PutObject"):
        with pytest.raises(PermissionDeniedError, match=action):
            authorize(p, action, JOB)


def test_data_scientist_acts_on_its_own_resources_only() -> None:
    p = who("DataScientist")
    mine, theirs = {OWNER_TAG: "alice"}, {OWNER_TAG: "bob"}
    authorize(p, "sagemaker:CreateTrainingJob", JOB)
    authorize(p, "sagemaker:StopTrainingJob", JOB, mine)
    authorize(p, "sagemaker:InvokeEndpoint", EP, lambda: mine)
    for action in ("sagemaker:StopTrainingJob", "sagemaker:DescribeTrainingJob"):
        with pytest.raises(PermissionDeniedError):
            authorize(p, action, JOB, theirs)
    with pytest.raises(PermissionDeniedError):
        authorize(p, "sagemaker:InvokeEndpoint", EP, {})  # nobody's (an admin's)
    with pytest.raises(PermissionDeniedError):
        authorize(p, "orchestrator:CreateUser", "*")
    assert OWNER_TAG in p.policies.tag_keys


def test_invoker_and_an_inline_policy_for_one_endpoint() -> None:
    authorize(who("Invoker"), "sagemaker:InvokeEndpoint", EP)
    with pytest.raises(PermissionDeniedError):
        authorize(who("Invoker"), "sagemaker:DescribeEndpoint", EP)
    one = parse_policy(doc(allow("sagemaker:InvokeEndpoint", EP)), name="ep-1-only")
    p = Principal("k2", "svc", "", policy_set([one], "svc"))
    authorize(p, "sagemaker:InvokeEndpoint", EP)
    with pytest.raises(PermissionDeniedError, match="ep-1-only"):
        authorize(p, "sagemaker:InvokeEndpoint", f"{ARN}:endpoint/ep-2")


def test_first_keys_roles_map_onto_managed_policies() -> None:
    authorize(Principal("k", "root", "admin"), "orchestrator:CreateUser", "*")
    authorize(Principal("k", "bot", "invoke"), "sagemaker:InvokeEndpoint", EP)
    with pytest.raises(PermissionDeniedError):
        authorize(Principal("k", "bot", "invoke"), "sagemaker:ListModels", "*")
    with pytest.raises(PermissionDeniedError):
        authorize(Principal("k", "x", "no-such-role"), "sagemaker:ListModels", "*")


def test_a_principal_crosses_the_wire_with_its_policies() -> None:
    one = parse_policy(doc(allow("sagemaker:InvokeEndpoint", EP)), name="one")
    p = Principal("k2", "svc", "", policy_set([one], "svc"))
    back = principal_from_wire(principal_to_wire(p))
    assert back == p and back.policies.names == ("one",)
    authorize(back, "sagemaker:InvokeEndpoint", EP)
    with pytest.raises(PermissionDeniedError):
        authorize(back, "sagemaker:InvokeEndpoint", f"{ARN}:endpoint/ep-2")
    legacy = principal_from_wire({"key_id": "k", "name": "n", "role": "invoke"})
    authorize(legacy, "sagemaker:InvokeEndpoint", EP)


def test_compiled_sets_are_shared() -> None:
    policies = [MANAGED["DataScientist"]]
    assert policy_set(policies, "alice") is policy_set(policies, "alice")
    assert policy_set(policies, "alice") is not policy_set(policies, "bob")


def test_the_iam_package_names_are_pinned() -> None:
    import orchestrator.iam

    assert orchestrator.iam.__all__ == [
        "ACTIONS", "ALLOW", "EXPLICIT_DENY", "IMPLICIT_DENY", "MANAGED", "OWNER_TAG", "ROLES",
        "Policy", "PolicySet", "TagSource", "check_arn", "managed", "parse_policy", "policy_set",
        "role_policies",
    ]  # fmt: skip
